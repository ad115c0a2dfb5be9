"""The Redis set-up docs/deploy.md prescribes for prod, against a real redis-server: TLS only (no
plaintext port), the default user off, and the ACL users exactly as the doc writes them. The
store, configured the way the prod overlay configures the services (rediss://, user, password, CA),
does all the Profiler's writes and the Selector's reads under those users, and nothing outside the
modipick keys."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from deploy_support import REPO
from fixtures_redis import RedisServer, free_port
from modipick.core.profiles import ModelProfile
from modipick.stores import StoreAccessDenied, make_store
from modipick.stores.base import ReturnLegSample

PASSWORD = "correct-horse-battery-staple"


def documented_acl_users() -> dict[str, list[str]]:
    """`ACL SETUSER <user> <rules...>` lines of docs/deploy.md: user -> rules (PASSWORD filled in)."""
    doc = (REPO / "docs" / "deploy.md").read_text()
    users = {}
    for line in re.findall(r"^ACL SETUSER .+$", doc, flags=re.MULTILINE):
        _, _, user, *rules = shlex.split(line)
        users[user] = [">" + PASSWORD if rule == ">PASSWORD" else rule for rule in rules]
    return users


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.fail("this test needs the openssl CLI (apt-get install openssl)")
    work = tmp_path_factory.mktemp("redis-tls")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=redis-ca", cwd=work)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "redis.key", "-out", "redis.csr",
            "-subj", "/CN=localhost", cwd=work)
    (work / "ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "redis.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-out", "redis.crt", "-extfile", "ext", cwd=work)
    acl = work / "users.acl"
    lines = [f"user {user} {' '.join(rules)}" for user, rules in documented_acl_users().items() if user != "default"]
    acl.write_text("\n".join(lines) + "\nuser default off\n")
    port = free_port()
    server = RedisServer(port=port, workdir=str(work), extra_args=(
        "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(work / "redis.crt"),
        "--tls-key-file", str(work / "redis.key"), "--tls-ca-cert-file", str(work / "ca.crt"),
        "--tls-auth-clients", "no", "--aclfile", str(acl)))
    server.start()
    yield port, work / "ca.crt"
    server.stop()


def store(port: int, ca: Path, user: str, **overrides):
    options = dict(username=user, password=PASSWORD, ca_file=str(ca), timeouts=2.0, retries=0)
    return make_store(f"rediss://127.0.0.1:{port}/0", **{**options, **overrides})


def test_the_doc_names_one_acl_user_per_component_and_disables_the_default() -> None:
    users = documented_acl_users()
    assert set(users) == {"modipick-selector", "modipick-profiler", "default"}
    assert users["default"] == ["off"]
    for user in ("modipick-selector", "modipick-profiler"):
        assert "~modipick:*" in users[user] and "resetkeys" in users[user], users[user]


def test_profiler_and_selector_work_under_their_documented_users(tls_redis) -> None:
    port, ca = tls_redis
    profiler = store(port, ca, "modipick-profiler")
    selector = store(port, ca, "modipick-selector")
    try:
        # the Profiler's writes
        assert profiler.register(ModelProfile("cnn-small", 1, declared_accuracy=90.0))
        assert profiler.observe_many([("cnn-small", 1, 4.0), ("cnn-small", 1, 6.0)], alpha=0.1) == 2
        assert profiler.record_outcome("cnn-small", 1, True)
        assert profiler.set_state("cnn-small", 1, "eligible")
        assert profiler.reseed("cnn-small", 1, 5.0, 1.0)
        assert profiler.append_return_legs([ReturnLegSample("client-a", 20.0, 22.0)], keep=100) == 1
        # the Selector's reads
        selector.ping()
        (profile,) = selector.load_all()
        assert (profile.name, profile.served) == ("cnn-small", 1)
        page = selector.read_return_legs("0", 10)
        assert [sample.client_id for _, sample in page.entries] == ["client-a"]
        assert profiler.deregister("cnn-small", 1)
    finally:
        profiler.close()
        selector.close()


def test_keys_outside_the_namespace_and_other_credentials_are_refused(tls_redis) -> None:
    port, ca = tls_redis
    outside = store(port, ca, "modipick-profiler", namespace="other")
    try:
        with pytest.raises(StoreAccessDenied):
            outside.register(ModelProfile("cnn-small", 1, declared_accuracy=90.0))
    finally:
        outside.close()
    for user, password in (("modipick-selector", "wrong"), ("default", "")):
        denied = store(port, ca, user, password=password or None)
        try:
            with pytest.raises(StoreAccessDenied):
                denied.load_all()
        finally:
            denied.close()


def test_there_is_no_plaintext_port(tls_redis) -> None:
    port, ca = tls_redis
    plaintext = make_store(f"redis://127.0.0.1:{port}/0", username="modipick-selector", password=PASSWORD,
                           timeouts=2.0, retries=0)
    try:
        with pytest.raises(Exception):
            plaintext.load_all()
    finally:
        plaintext.close()
