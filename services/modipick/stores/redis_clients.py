"""redis-py clients (blocking and asyncio) for a RedisTarget: one server, a Sentinel-managed primary
or a Cluster, with the timeouts, retries, credentials and TLS of RedisOptions."""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aredis
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.connection import parse_url as parse_async_url
from redis.asyncio.retry import Retry as AsyncRetry
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.backoff import ExponentialWithJitterBackoff
from redis.cluster import ClusterNode
from redis.connection import parse_url
from redis.retry import Retry
from redis.sentinel import Sentinel

from modipick.stores.errors import StoreConfigError
from modipick.stores.redis_options import RedisOptions, RedisTarget, parse_target, redact, scheme_of


def _backoff() -> ExponentialWithJitterBackoff:
    return ExponentialWithJitterBackoff(base=0.05, cap=0.5)


def _connection_kwargs(url: str, target: RedisTarget, options: RedisOptions, parse=parse_url, *,
                       decode_responses: bool = True) -> dict[str, Any]:
    """Connection keywords; `parse` is redis-py's URL parser of the blocking or the asyncio client
    (they name different connection classes for rediss://)."""
    scheme = scheme_of(url)
    if options.uses_tls_files and scheme != "rediss":
        raise StoreConfigError(f"TLS files were given but the URL is not rediss://: {redact(url)!r}")
    if target.kind == "server":
        try:
            kwargs: dict[str, Any] = parse(url)
        except ValueError as error:
            raise StoreConfigError(f"bad Redis URL {redact(url)!r}: {error}") from None
    else:
        kwargs = {"username": target.username, "password": target.password}
    kwargs.update(decode_responses=decode_responses, socket_connect_timeout=options.timeouts.connect,
                  socket_timeout=options.timeouts.read)
    if options.username is not None:
        kwargs["username"] = options.username
    if options.password is not None:
        kwargs["password"] = options.password
    if scheme == "rediss":
        kwargs.update(ssl_ca_certs=options.ca_file, ssl_certfile=options.cert_file,
                      ssl_keyfile=options.key_file, ssl_check_hostname=options.check_hostname)
    return {key: value for key, value in kwargs.items() if value is not None or key.startswith("ssl_")}


def sync_client(url: str, options: RedisOptions) -> redis.Redis | redis.RedisCluster:
    target = parse_target(url)
    kwargs = _connection_kwargs(url, target, options)
    # Only connection errors are retried: after a read timeout the script may have run, and
    # replaying a batch would count its observations twice.
    retry = Retry(_backoff(), options.retries, supported_errors=(redis.exceptions.ConnectionError,))
    if target.kind == "cluster":
        return redis.RedisCluster(startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],
                                  retry=retry, **kwargs)
    if target.kind == "sentinel":
        sentinels = Sentinel(list(target.nodes), socket_connect_timeout=options.timeouts.connect,
                             socket_timeout=options.timeouts.read)
        return sentinels.master_for(target.service, db=target.db, retry=retry, **kwargs)
    return redis.Redis(connection_pool=redis.ConnectionPool(retry=retry, **kwargs))


def async_client(url: str, options: RedisOptions, *,
                 decode_responses: bool = True) -> aredis.Redis | aredis.RedisCluster:
    """`decode_responses=False`: replies as bytes (binary values such as a client's return-leg state)."""
    target = parse_target(url)
    kwargs = _connection_kwargs(url, target, options, parse_async_url, decode_responses=decode_responses)
    retry = AsyncRetry(_backoff(), options.retries, supported_errors=(redis.exceptions.ConnectionError,))
    if target.kind == "cluster":
        return aredis.RedisCluster(startup_nodes=[AsyncClusterNode(host, port) for host, port in target.nodes],
                                   retry=retry, **kwargs)
    if target.kind == "sentinel":
        sentinels = AsyncSentinel(list(target.nodes), socket_connect_timeout=options.timeouts.connect,
                                  socket_timeout=options.timeouts.read)
        return sentinels.master_for(target.service, db=target.db, retry=retry, **kwargs)
    return aredis.Redis(connection_pool=aredis.ConnectionPool(retry=retry, **kwargs))


async def rediscover_primary(client: Any, topology: str) -> None:
    """After a failed command behind Sentinel, ask for the primary again: redis.asyncio keeps its
    pooled connections to a former primary until that one closes them (the blocking client asks
    the sentinels whenever it returns a connection to the pool)."""
    if topology != "sentinel":
        return
    try:
        await client.connection_pool.get_master_address()
    except Exception:  # the sentinels may be unreachable too: the next call reconnects anyway
        pass
