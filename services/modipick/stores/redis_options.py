"""How to reach Redis: value objects built once from configuration, turned into redis-py clients
(modipick.stores.redis_clients).

    redis://[user:password@]host:6379/0                      one server (rediss:// for TLS)
    redis+sentinel://host:26379[,host:26379...]/mymaster/0   the primary a Sentinel group names
    redis+cluster://host:7000[,host:7001...]                 a Redis Cluster (any of its nodes)

Credentials may come in the URL or, better for secrets read from files or the environment, in
RedisOptions; options win over the URL. The password is never part of any repr. Sentinel and
Cluster URLs carry the data nodes' credentials; the sentinels themselves are reached without.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from modipick.stores.errors import StoreConfigError

SCHEMES = ("redis", "rediss")
SENTINEL_SCHEME = "redis+sentinel"
CLUSTER_SCHEME = "redis+cluster"
ALL_SCHEMES = (*SCHEMES, SENTINEL_SCHEME, CLUSTER_SCHEME)
URL_PREFIXES = tuple(f"{scheme}://" for scheme in ALL_SCHEMES)
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
    # Replicas that must hold a write (WAIT) before it counts as stored; a write they do not
    # acknowledge in replica_ack_ms raises StoreWriteUnconfirmed (a failover now could lose it).
    # Only as many as there are replicas guarantees it: with fewer, a replica that is not promoted
    # may acknowledge writes the old primary takes after the promotion, which are then lost.
    replica_acks: int = 0
    replica_ack_ms: int = 200

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
        if self.replica_acks < 0 or self.replica_ack_ms < 1:
            raise StoreConfigError(f"Redis replica_acks must be >= 0 and replica_ack_ms >= 1, got "
                                   f"{self.replica_acks!r} and {self.replica_ack_ms!r}")
        if self.retries < 0 or self.max_batch < 1:
            raise StoreConfigError(f"Redis retries must be >= 0 and max_batch >= 1, got "
                                   f"{self.retries!r} and {self.max_batch!r}")

    @property
    def uses_tls_files(self) -> bool:
        return bool(self.ca_file or self.cert_file)


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """Where the data lives: one server, a Sentinel-managed primary, or a Cluster."""

    kind: str  # "server" | "sentinel" | "cluster"
    nodes: tuple[tuple[str, int], ...] = ()  # sentinels or cluster seed nodes
    service: str = ""  # the Sentinel service (master) name
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def scheme_of(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def parse_target(url: str) -> RedisTarget:
    """A Sentinel or Cluster URL taken apart (a plain server URL is left to redis-py's parser)."""
    scheme = scheme_of(url)
    if scheme not in ALL_SCHEMES:
        raise StoreConfigError(f"Redis URL must start with one of {', '.join(s + '://' for s in ALL_SCHEMES)}, "
                               f"got {redact(url)!r}")
    if scheme in SCHEMES:
        return RedisTarget("server")
    rest = url.split("://", 1)[1]
    userinfo, _, rest = rest.rpartition("@")
    username, _, password = userinfo.partition(":")
    hosts, _, path = rest.partition("/")
    nodes = tuple(_host_port(item, url) for item in hosts.split(",") if item.strip())
    if not nodes:
        raise StoreConfigError(f"Redis URL names no host: {redact(url)!r}")
    parts = [part for part in path.split("/") if part]
    credentials = {"username": unquote(username) or None, "password": unquote(password) or None}
    if scheme == CLUSTER_SCHEME:
        if parts not in ([], ["0"]):
            raise StoreConfigError(f"a Redis Cluster has database 0 only; drop the path of {redact(url)!r}")
        return RedisTarget("cluster", nodes, **credentials)
    if not parts or len(parts) > 2:
        raise StoreConfigError(f"a Sentinel URL is redis+sentinel://host:port[,host:port]/service[/db], "
                               f"got {redact(url)!r}")
    try:
        db = int(parts[1]) if len(parts) == 2 else 0
    except ValueError:
        raise StoreConfigError(f"Sentinel URL database must be a number, got {parts[1]!r}") from None
    return RedisTarget("sentinel", nodes, unquote(parts[0]), db, **credentials)


def _host_port(item: str, url: str) -> tuple[str, int]:
    host, _, port = item.strip().rpartition(":")
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not host or not 0 < number < 65536:
        raise StoreConfigError(f"bad host:port {item.strip()!r} in Redis URL {redact(url)!r}")
    return host.strip("[]"), number


def hash_tagged(namespace: str) -> str:
    """The namespace with a Cluster hash tag, so that every key of it lives in one slot (each Lua
    script touches keys of one slot only): "modipick" -> "{modipick}"; one with a tag stays."""
    return namespace if re.search(r"\{[^{}]+\}", namespace) else f"{{{namespace}}}"


def redact(url: str) -> str:
    """The URL without its password, fit for logs and error messages."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)
