"""How to reach Redis: value objects built once from configuration, turned into a redis-py pool.

Credentials may come in the URL (redis://user:password@host:6379/0) or, better for secrets read
from files or the environment, in RedisOptions; options win over the URL. The password is never
part of any repr.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.connection import parse_url
from redis.retry import Retry

from modipick.stores.errors import StoreConfigError

SCHEMES = ("redis", "rediss")
_NAMESPACE = re.compile(r"^[A-Za-z0-9_.\-{}]+$")


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds; None waits forever (never a good idea on a request path)."""

    connect: float | None = 2.0
    read: float | None = 2.0

    def __post_init__(self) -> None:
        for label, value in (("connect", self.connect), ("read", self.read)):
            if value is not None and not value > 0:
                raise StoreConfigError(f"Redis {label} timeout must be > 0 seconds, got {value!r}")


@dataclass(frozen=True, slots=True)
class RedisOptions:
    namespace: str = "modipick"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None  # CA bundle to verify the server (rediss:// only)
    cert_file: str | None = None  # client certificate for mutual TLS
    key_file: str | None = None
    check_hostname: bool = True
    timeouts: Timeouts | float = Timeouts()
    retries: int = 2  # on connection errors (not timeouts), with jittered exponential backoff
    max_batch: int = 5000  # observations per Lua call; bigger batches are split (each part atomic)

    def __post_init__(self) -> None:
        if isinstance(self.timeouts, (int, float)):  # httpx-style shorthand: one number for both
            object.__setattr__(self, "timeouts", Timeouts(self.timeouts, self.timeouts))
        if not _NAMESPACE.match(self.namespace):
            raise StoreConfigError(f"Redis namespace must be letters, digits or _.-{{}}, got {self.namespace!r}")
        if bool(self.cert_file) != bool(self.key_file):
            raise StoreConfigError("a Redis client certificate needs both cert_file and key_file")
        for path in (self.ca_file, self.cert_file, self.key_file):
            if path and not Path(path).is_file():
                raise StoreConfigError(f"Redis TLS file not found: {path}")
        if self.retries < 0 or self.max_batch < 1:
            raise StoreConfigError(f"Redis retries must be >= 0 and max_batch >= 1, got "
                                   f"{self.retries!r} and {self.max_batch!r}")

    @property
    def uses_tls_files(self) -> bool:
        return bool(self.ca_file or self.cert_file)


def connection_pool(url: str, options: RedisOptions) -> redis.ConnectionPool:
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in SCHEMES:
        raise StoreConfigError(f"Redis URL must start with redis:// or rediss:// (TLS), got {redact(url)!r}")
    if options.uses_tls_files and scheme != "rediss":
        raise StoreConfigError(f"TLS files were given but the URL is not rediss://: {redact(url)!r}")
    try:
        kwargs: dict[str, Any] = parse_url(url)
    except ValueError as error:
        raise StoreConfigError(f"bad Redis URL {redact(url)!r}: {error}") from None
    kwargs.update(
        decode_responses=True,
        socket_connect_timeout=options.timeouts.connect,
        socket_timeout=options.timeouts.read,
        # Only connection errors are retried: after a read timeout the script may have run, and
        # replaying a batch would count its observations twice.
        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), options.retries,
                    supported_errors=(redis.exceptions.ConnectionError,)),
    )
    if options.username is not None:
        kwargs["username"] = options.username
    if options.password is not None:
        kwargs["password"] = options.password
    if scheme == "rediss":
        kwargs.update(ssl_ca_certs=options.ca_file, ssl_certfile=options.cert_file,
                      ssl_keyfile=options.key_file, ssl_check_hostname=options.check_hostname)
    return redis.ConnectionPool(**kwargs)


def redact(url: str) -> str:
    """The URL without its password, fit for logs and error messages."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)
