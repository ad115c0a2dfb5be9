"""Flags every service shares beyond TLS: Redis credentials and TLS files, the admin token, the
shutdown drain. Secrets come from the environment or from `file:/path` (Kubernetes secret
volumes) and are never echoed: help shows "(set)", errors and logs show "***".

    --redis-username / --redis-password     AUTH / ACL user (MODIPICK_REDIS_PASSWORD or file:)
    --redis-ca / --redis-cert / --redis-key  rediss:// server CA, client certificate (mutual TLS)
    --redis-replica-acks                     replicas that must hold each write (Sentinel setups)
    --admin-token                            bearer token of admin RPCs (MODIPICK_ADMIN_TOKEN or file:)
    --drain-delay-s                          NOT_SERVING this long before the listener closes
"""

from __future__ import annotations

import argparse
from typing import Any

from modipick.runtime.config import non_negative_float, read_secret


def add_redis_options(parser) -> None:
    parser.add_option("--redis-username", default="", help="Redis ACL user (else the URL's, else 'default')")
    parser.add_option("--redis-password", default="", secret=True,
                      help="Redis password, or file:/path (wins over a password in the URL)")
    parser.add_option("--redis-ca", default="", help="CA bundle that signs the Redis server (rediss://)")
    parser.add_option("--redis-cert", default="", help="client certificate for Redis mutual TLS")
    parser.add_option("--redis-key", default="", help="client key for --redis-cert", secret=True)
    parser.add_option("--redis-replica-acks", default=0, type=int,
                      help="replicas that must acknowledge each write (WAIT) before it counts as stored; "
                           "unacknowledged writes are kept and retried: set it to the number of replicas "
                           "and a failover loses none (0: off)")


def _secret(parser, flag: str, value: str) -> str | None:
    try:
        return read_secret(value)
    except OSError as exc:
        parser.error(f"{flag}: cannot read {value[5:]!r}: {exc.strerror or exc}")
        return None  # parser.error exits; for parsers that do not


def redis_store_options(parser, args: argparse.Namespace) -> dict[str, Any]:
    """RedisOptions fields from add_redis_options' flags (only those given)."""
    options: dict[str, Any] = {}
    if args.redis_username:
        options["username"] = args.redis_username
    password = _secret(parser, "--redis-password", args.redis_password)
    if password:
        options["password"] = password
    for flag, field in (("redis_ca", "ca_file"), ("redis_cert", "cert_file"), ("redis_key", "key_file")):
        if getattr(args, flag):
            options[field] = getattr(args, flag)
    acks = getattr(args, "redis_replica_acks", 0)
    if acks < 0:
        parser.error(f"--redis-replica-acks: must be >= 0, got {acks}")
    if acks:
        options["replica_acks"] = acks
    return options


def add_admin_token_option(parser) -> None:
    parser.add_option("--admin-token", default="", secret=True,
                      help="bearer token admin RPCs must carry, or file:/path; unset: admin RPCs are refused")


def admin_token(parser, args: argparse.Namespace) -> str | None:
    return _secret(parser, "--admin-token", args.admin_token)


def add_drain_option(parser) -> None:
    parser.add_option("--drain-delay-s", default=0.0, type=non_negative_float,
                      help="on SIGTERM, report NOT_SERVING this long before refusing new calls")


def add_max_inflight_option(parser) -> None:
    parser.add_option("--max-inflight", default=0, type=int,
                      help="concurrent calls served; beyond, RESOURCE_EXHAUSTED at once (0: unbounded)")


def add_reliability_options(parser, *, redis: bool = True, admin: bool = False, inflight: bool = False) -> None:
    """The flags above a service takes; `reliability_settings` turns them into settings fields."""
    add_drain_option(parser)
    if redis:
        add_redis_options(parser)
    if admin:
        add_admin_token_option(parser)
    if inflight:
        add_max_inflight_option(parser)


def reliability_settings(parser, args: argparse.Namespace) -> dict[str, Any]:
    """Settings fields (for dataclasses.replace) from the flags add_reliability_options added."""
    fields: dict[str, Any] = {"drain_delay_s": args.drain_delay_s}
    if hasattr(args, "redis_password"):
        fields["store_options"] = redis_store_options(parser, args)
    if hasattr(args, "admin_token"):
        fields["admin_token"] = admin_token(parser, args)
    if hasattr(args, "max_inflight"):
        if args.max_inflight < 0:
            parser.error(f"--max-inflight: must be >= 0, got {args.max_inflight}")
        fields["max_inflight"] = args.max_inflight or None
    return fields
