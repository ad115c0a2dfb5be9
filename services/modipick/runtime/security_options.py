"""Security flags (docs/security.md), with `MODIPICK_*` environment defaults like the others.
Secrets (keys, tokens) may be given as `file:/path` and are never echoed.

Selector:  --client-auth off|required|anonymous, --jwt-*, --client-mtls   who a client is
           --ticket-key[-id], --ticket-previous-key[-id]                   signed outcome tickets
           --report-rate-per-s, --report-burst                             outcome reports per client
Executor, Selector: --service-token                                        shown to the Profiler
Profiler:  --executor-token, --selector-token, --executor-names, --selector-names
           --accuracy-max-shift-pct, --label-clients                       bounded label influence
"""

from __future__ import annotations

import argparse
from modipick.runtime.config import non_negative_float, positive_int, read_secret


def _secret(parser, flag: str, value: str) -> str:
    try:
        return read_secret(value) or ""
    except OSError as exc:
        parser.error(f"{flag}: cannot read {value[5:]!r}: {exc.strerror or exc}")
        return ""


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def add_client_auth_options(parser) -> None:
    parser.add_option("--client-auth", default="off", choices=("off", "required", "anonymous"),
                      help="who a client is: 'required' (a JWT or a client certificate; others UNAUTHENTICATED), "
                           "'anonymous' (others share one anonymous client that can name none), 'off' (client_id "
                           "as sent)")
    parser.add_option("--jwt-hs256-secret", default="", secret=True,
                      help="HS256 key client tokens are verified with, or file:/path")
    parser.add_option("--jwt-hs256-previous-secret", default="", secret=True,
                      help="the HS256 key before the last rotation (still verifies), or file:/path")
    parser.add_option("--jwt-public-keys", default="",
                      help="PEM public keys (RSA: RS256, EC: ES256) client tokens are verified with, comma-separated")
    parser.add_option("--jwt-issuer", default="", help="required 'iss' of client tokens ('' : not checked)")
    parser.add_option("--jwt-audience", default="", help="required 'aud' of client tokens ('' : not checked)")
    parser.add_option("--jwt-leeway-s", default=0.0, type=non_negative_float,
                      help="clock skew tolerated on a token's exp/nbf")
    parser.add_option("--client-mtls", action="store_true",
                      help="a client certificate's name (SAN, else CN) is the client's identity "
                           "(needs --tls-client-ca)")


def client_auth_settings(parser, args: argparse.Namespace):
    from modipick.runtime.identity import JwtSettings
    from modipick.runtime.identity_interceptors import ClientAuthSettings

    secrets = tuple(s for s in (_secret(parser, "--jwt-hs256-secret", args.jwt_hs256_secret),
                                _secret(parser, "--jwt-hs256-previous-secret", args.jwt_hs256_previous_secret)) if s)
    jwt = JwtSettings(hs256_secrets=secrets, public_key_files=_names(args.jwt_public_keys), issuer=args.jwt_issuer,
                      audience=args.jwt_audience, leeway_s=args.jwt_leeway_s)
    if args.client_mtls and not args.tls_client_ca:
        parser.error("--client-mtls: client certificates need --tls-client-ca")
    try:
        settings = ClientAuthSettings(mode=args.client_auth, jwt=jwt, mtls=bool(args.client_mtls))
        if jwt.enabled:  # read the key files now: a bad one is a start-up error naming the flag
            from modipick.runtime.identity import JwtVerifier

            JwtVerifier(jwt)
    except (ValueError, OSError) as exc:
        parser.error(f"--client-auth/--jwt-*: {exc}")
    return settings


def add_ticket_options(parser) -> None:
    parser.add_option("--ticket-key", default="", secret=True,
                      help="HMAC key (>= 16 bytes) outcome tickets are signed with, shared by the replicas, or "
                           "file:/path; set: a report must carry its signed ticket")
    parser.add_option("--ticket-key-id", default="k1", help="the id tickets name --ticket-key by")
    parser.add_option("--ticket-previous-key", default="", secret=True,
                      help="the key before the last rotation (still verifies), or file:/path")
    parser.add_option("--ticket-previous-key-id", default="k0", help="the id of --ticket-previous-key")
    parser.add_option("--report-rate-per-s", default=0.0, type=non_negative_float,
                      help="outcome reports per second per client; beyond, RESOURCE_EXHAUSTED (0: unlimited)")
    parser.add_option("--report-burst", default=100, type=positive_int,
                      help="outcome reports a client may send at once")


def ticket_keys(parser, args: argparse.Namespace) -> tuple[str, bytes, str, bytes]:
    """(current id, current key, previous id, previous key) from add_ticket_options' flags."""
    return (args.ticket_key_id, _secret(parser, "--ticket-key", args.ticket_key).encode(),
            args.ticket_previous_key_id, _secret(parser, "--ticket-previous-key", args.ticket_previous_key).encode())


def add_service_token_option(parser) -> None:
    parser.add_option("--service-token", default="", secret=True,
                      help="bearer token this service shows the Profiler (its role's token there), or file:/path")


def service_token(parser, args: argparse.Namespace) -> str | None:
    return _secret(parser, "--service-token", args.service_token) or None


def add_service_identity_options(parser) -> None:
    parser.add_option("--executor-token", default="", secret=True,
                      help="token Executors show to RecordObservations, or file:/path (set: others are refused)")
    parser.add_option("--selector-token", default="", secret=True,
                      help="token Selectors show to RecordOutcome, or file:/path (set: others are refused)")
    parser.add_option("--executor-names", default="",
                      help="client certificate names (SAN or CN) of Executors, comma-separated (mTLS)")
    parser.add_option("--selector-names", default="",
                      help="client certificate names (SAN or CN) of Selectors, comma-separated (mTLS)")
    parser.add_option("--accuracy-max-shift-pct", default=0.0, type=non_negative_float,
                      help="the most one client's labels may move a model's measured accuracy, in percentage "
                           "points; beyond, its labels are not counted (0: no bound)")
    parser.add_option("--label-clients", default="",
                      help="only these clients' labels count (comma-separated ids, or file:/path, one a line); "
                           "'' : every client's")


def service_credentials(parser, args: argparse.Namespace, admin_token: str | None):
    """ServiceCredentials from add_service_identity_options' flags and the admin token."""
    from modipick.runtime.identity import ServiceCredentials

    tokens = {"executor": _secret(parser, "--executor-token", args.executor_token),
              "selector": _secret(parser, "--selector-token", args.selector_token), "admin": admin_token or ""}
    names = {"executor": _names(args.executor_names), "selector": _names(args.selector_names)}
    if (names["executor"] or names["selector"]) and not args.tls_client_ca:
        parser.error("--executor-names/--selector-names: certificate names need --tls-client-ca (mTLS)")
    return ServiceCredentials(tokens={k: v for k, v in tokens.items() if v}, names=names)


def label_clients(parser, args: argparse.Namespace) -> frozenset[str] | None:
    """--label-clients: the clients whose labels count (None: every client's)."""
    if not args.label_clients:
        return None
    return frozenset(_names(_secret(parser, "--label-clients", args.label_clients).replace("\n", ",")))
