"""Who is calling: a client from a JWT bearer token or its mTLS certificate, a service from its
per-role token or certificate name, or nobody.

`Identity` is what an interceptor (modipick.runtime.identity_interceptor) resolves once per call
and leaves in a context variable for the handler (`current_identity()`). Secrets (HS256 keys,
service tokens) are compared in constant time and never logged.

JWTs (PyJWT): the signature against the configured keys (HS256 secrets, RS256/ES256 public keys;
several of each for rotation), `exp` and `sub` required, `iss` and `aud` checked when configured.
A verified token is cached until its expiry (bounded), so a client's repeated token costs one
dictionary look-up per call.
"""

from __future__ import annotations

import collections
import hmac
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping

import grpc

AUTHORIZATION_KEY = "authorization"
ANONYMOUS_CLASS = "anonymous"
# every unauthenticated caller shares this client id (and so one return-leg model and one network
# class, "anonymous"); no authenticated subject may fall into that class
ANONYMOUS_CLIENT_ID = ANONYMOUS_CLASS + "/*"
ROLES = ("executor", "selector", "admin")


@dataclass(frozen=True, slots=True)
class Identity:
    subject: str   # the client id (JWT `sub`, certificate name), or the service's name
    role: str      # "client" | "anonymous" | one of ROLES
    via: str       # "jwt" | "mtls" | "token" | "none"

    @property
    def anonymous(self) -> bool:
        return self.role == "anonymous"


ANONYMOUS = Identity(ANONYMOUS_CLIENT_ID, "anonymous", "none")
_current: ContextVar[Identity | None] = ContextVar("modipick_identity", default=None)


def current_identity() -> Identity | None:
    """The identity the interceptor resolved for the call being handled (None: none resolved)."""
    return _current.get()


def set_current_identity(identity: Identity | None):
    return _current.set(identity)


class Refused(Exception):
    """A call the identity rules refuse: UNAUTHENTICATED (no or bad credentials) or PERMISSION_DENIED."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def unauthenticated(message: str) -> Refused:
    return Refused(grpc.StatusCode.UNAUTHENTICATED, message)


def denied(message: str) -> Refused:
    return Refused(grpc.StatusCode.PERMISSION_DENIED, message)


def bearer_token(metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
    """The `authorization: Bearer <token>` token of a call's metadata ("" : none)."""
    for key, value in metadata or ():
        if key == AUTHORIZATION_KEY:
            text = value.decode(errors="replace") if isinstance(value, bytes) else value
            return text.removeprefix("Bearer ").strip()
    return ""


def certificate_names(auth_context: Mapping[str, list[bytes]] | None) -> list[str]:
    """The names an mTLS peer's certificate carries: subject alternative names, then the common name."""
    if not auth_context:
        return []
    names = [*auth_context.get("x509_subject_alternative_name", ()), *auth_context.get("x509_common_name", ())]
    return [n.decode(errors="replace") if isinstance(n, bytes) else str(n) for n in names]


# -- client identity: JWTs -------------------------------------------------------------------------
@dataclass(frozen=True)
class JwtSettings:
    hs256_secrets: tuple[str, ...] = field(default=(), repr=False)  # current first, then previous ones
    public_key_files: tuple[str, ...] = ()                           # PEM: RSA -> RS256, EC -> ES256
    issuer: str = ""                                                 # "" : not checked
    audience: str = ""                                               # "" : not checked
    leeway_s: float = 0.0                                            # tolerated clock skew on exp/nbf
    cache_size: int = 10_000

    @property
    def enabled(self) -> bool:
        return bool(self.hs256_secrets or self.public_key_files)


def _public_key(path: str):
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    key = load_pem_public_key(Path(path).read_bytes())
    if isinstance(key, rsa.RSAPublicKey):
        return "RS256", key
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "ES256", key
    raise ValueError(f"{path}: a JWT key must be an RSA or EC public key, got {type(key).__name__}")


class JwtVerifier:
    def __init__(self, settings: JwtSettings, *, clock: Callable[[], float] = time.time) -> None:
        import jwt  # PyJWT: only a Selector with token authentication needs it

        self._jwt = jwt
        self.settings = settings
        self._keys: list[tuple[str, object]] = [("HS256", s.encode()) for s in settings.hs256_secrets]
        self._keys += [_public_key(p) for p in settings.public_key_files]
        if not self._keys:
            raise ValueError("JWT verification needs at least one key (an HS256 secret or a public key file)")
        self._clock = clock
        self._verified: collections.OrderedDict[str, tuple[str, float]] = collections.OrderedDict()

    def subject(self, token: str) -> str:
        """The verified token's subject; Refused(UNAUTHENTICATED) naming what is wrong."""
        hit = self._verified.get(token)
        if hit is not None:
            if hit[1] + self.settings.leeway_s > self._clock():
                return hit[0]
            del self._verified[token]
            raise unauthenticated("token expired")
        jwt = self._jwt
        try:
            alg = jwt.get_unverified_header(token).get("alg")
        except jwt.PyJWTError:
            raise unauthenticated("malformed bearer token (a JWT was expected)") from None
        s = self.settings
        options = {"require": ["exp", "sub"], "verify_aud": bool(s.audience), "verify_iss": bool(s.issuer)}
        problem = f"token algorithm {str(alg)[:16]!r} is not accepted"
        for key_alg, key in self._keys:
            if key_alg != alg:
                continue
            try:
                claims = jwt.decode(token, key, algorithms=[key_alg], audience=s.audience or None,
                                    issuer=s.issuer or None, leeway=s.leeway_s, options=options)
            except jwt.InvalidSignatureError:
                problem = "token signature does not verify"
                continue
            except jwt.ExpiredSignatureError:
                raise unauthenticated("token expired") from None
            except jwt.InvalidAudienceError:
                raise unauthenticated("token audience is not this service") from None
            except jwt.InvalidIssuerError:
                raise unauthenticated("token issuer is not trusted") from None
            except jwt.PyJWTError as exc:
                raise unauthenticated(f"token rejected: {str(exc)[:120]}") from None
            subject = claims.get("sub")
            if not isinstance(subject, str) or not subject or len(subject) > 256:
                raise unauthenticated("token subject must be a non-empty string of at most 256 characters")
            self._remember(token, subject, float(claims["exp"]))
            return subject
        raise unauthenticated(problem)

    def _remember(self, token: str, subject: str, expires: float) -> None:
        self._verified[token] = (subject, expires)
        if len(self._verified) > self.settings.cache_size:
            self._verified.popitem(last=False)


# -- service identity: per-role tokens and certificate names --------------------------------------
@dataclass(frozen=True)
class ServiceCredentials:
    """What proves a caller is an Executor, a Selector or an operator (admin)."""

    tokens: Mapping[str, str] = field(default_factory=dict, repr=False)   # role -> bearer token
    names: Mapping[str, tuple[str, ...]] = field(default_factory=dict)    # role -> mTLS certificate names

    def __post_init__(self) -> None:
        for role in (*self.tokens, *self.names):
            if role not in ROLES:
                raise ValueError(f"unknown service role {role!r}: one of {', '.join(ROLES)}")

    @property
    def configured(self) -> bool:
        return any(self.tokens.values()) or any(self.names.values())

    def role(self, token: str, cert_names: list[str]) -> str | None:
        """The role the token or the certificate proves (None: neither proves one)."""
        if token:
            presented = token.encode()
            for role, expected in self.tokens.items():
                if expected and hmac.compare_digest(presented, expected.encode()):
                    return role
        for role, names in self.names.items():
            if any(n in names for n in cert_names):
                return role
        return None
