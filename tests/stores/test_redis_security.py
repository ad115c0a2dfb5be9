"""Redis with a password, with an ACL user, and over TLS (mutual TLS) — real redis-server each time."""

from __future__ import annotations

import pytest
from fixtures_redis import RedisServer, free_port

from certs_support import Certs, make_certs
from modipick.core import ModelProfile
from modipick.stores import (RedisOptions, StoreAccessDenied, StoreConfigError, StoreUnavailable, Timeouts,
                             make_async_store, make_store)

from stores_blocking import BlockingView


def start(tmp_path, *extra_args: str, port: int | None = None) -> RedisServer:
    return RedisServer(port=port or free_port(), workdir=str(tmp_path), extra_args=extra_args).start()


@pytest.fixture(params=["blocking", "asyncio"])
def make(request):
    """make_store, or the asyncio store behind the blocking calls: credentials and TLS for both."""
    if request.param == "blocking":
        return make_store
    return lambda url, **options: BlockingView(make_async_store(url, **options))


@pytest.fixture
def server_factory(tmp_path):
    servers: list[RedisServer] = []

    def factory(*extra_args: str, port: int | None = None) -> RedisServer:
        servers.append(start(tmp_path, *extra_args, port=port))
        return servers[-1]

    yield factory
    for server in servers:
        server.stop()


def round_trip(store) -> None:
    """Every kind of call the Profiler and Selector make, so any refused command shows up."""
    try:
        assert store.register(ModelProfile(name="m", declared_accuracy=80.0)) is True
        assert store.observe_many([("m", 1, 4.0), ("m", 1, 6.0)], alpha=0.5, now=1.0) == 2
        assert store.record_outcome("m", 1, True) and store.set_state("m", 1, "failing")
        (profile,) = store.load_all()
        assert (profile.mean_ms, profile.samples, profile.served, profile.state) == (5.0, 2, 1, "failing")
        assert store.deregister("m", 1) is True
    finally:
        store.close()


def fast(**fields) -> dict:
    return {"retries": 0, "timeouts": Timeouts(connect=1.0, read=1.0), **fields}


def test_requirepass_password_in_url_or_in_options(make, server_factory):
    server = server_factory("--requirepass", "s3cret pass")
    round_trip(make(f"redis://:s3cret%20pass@127.0.0.1:{server.port}/0"))
    round_trip(make(server.url, password="s3cret pass"))
    # the explicit option wins over a stale password in the URL (secrets from files/env)
    round_trip(make(f"redis://:old@127.0.0.1:{server.port}/0", password="s3cret pass"))


@pytest.mark.parametrize("password", [None, "wrong"])
def test_requirepass_refuses_missing_or_wrong_password(make, server_factory, password):
    server = server_factory("--requirepass", "s3cret")
    store = make(server.url, **fast(password=password))
    with pytest.raises(StoreAccessDenied, match="refused load_all"):
        store.load_all()
    store.close()


def test_acl_user_limited_to_its_namespace(make, server_factory):
    server = server_factory("--user", "default", "off",
                            "--user", "profiler", "on", ">pw", "~modipick:*", "+@all")
    round_trip(make(f"redis://profiler:pw@127.0.0.1:{server.port}/0"))
    round_trip(make(server.url, username="profiler", password="pw"))
    outside = make(server.url, **fast(username="profiler", password="pw", namespace="other"))
    with pytest.raises(StoreAccessDenied, match="refused register"):
        outside.register(ModelProfile(name="m"))
    outside.close()
    for creds in ({"username": "profiler", "password": "nope"}, {}):
        store = make(server.url, **fast(**creds))
        with pytest.raises(StoreAccessDenied):
            store.load_all()
        store.close()


@pytest.fixture
def certs(tmp_path) -> Certs:
    return make_certs(tmp_path / "pki")


@pytest.fixture
def tls_server(server_factory, certs):
    port = free_port()
    return server_factory("--port", "0", "--tls-port", str(port), "--tls-cert-file", certs.server_cert,
                          "--tls-key-file", certs.server_key, "--tls-ca-cert-file", certs.ca,
                          "--tls-auth-clients", "yes", "--requirepass", "pw", port=port)


def tls_url(server: RedisServer, host: str = "localhost") -> str:
    return f"rediss://:pw@{host}:{server.port}/0"


def test_mutual_tls_with_password(make, tls_server, certs):
    round_trip(make(tls_url(tls_server), ca_file=certs.ca, cert_file=certs.client_cert,
                          key_file=certs.client_key))
    round_trip(make(tls_url(tls_server, "127.0.0.1"), ca_file=certs.ca, cert_file=certs.client_cert,
                          key_file=certs.client_key))


def test_tls_refuses_clients_without_a_certificate_or_with_another_ca(make, tls_server, certs, tmp_path):
    other = make_certs(tmp_path / "other-pki", ca_name="someone else")
    attempts = [
        make(tls_url(tls_server), **fast(ca_file=certs.ca)),  # server requires a client cert
        make(tls_url(tls_server), **fast(ca_file=other.ca, cert_file=certs.client_cert,
                                               key_file=certs.client_key)),  # server cert not trusted
        make(tls_url(tls_server), **fast(ca_file=certs.ca, cert_file=other.client_cert,
                                               key_file=other.client_key)),  # client cert not trusted
        make(f"redis://:pw@127.0.0.1:{tls_server.port}/0", **fast()),  # plaintext to a TLS port
    ]
    for store in attempts:
        with pytest.raises(StoreUnavailable):
            store.load_all()
        store.close()


def test_tls_options_are_checked_before_connecting(certs, tmp_path):
    with pytest.raises(StoreConfigError, match="not rediss://"):
        make_store("redis://127.0.0.1:1/0", ca_file=certs.ca)
    with pytest.raises(StoreConfigError, match="not found: .*missing.pem"):
        make_store("rediss://127.0.0.1:1/0", ca_file=str(tmp_path / "missing.pem"))
    with pytest.raises(StoreConfigError, match="both cert_file and key_file"):
        RedisOptions(cert_file=certs.client_cert)
