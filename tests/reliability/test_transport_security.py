"""Mutual TLS on every hop (client -> Selector -> Executor -> Profiler -> Executor), an admin token
on the Profiler's admin RPCs, and message size limits on both ends of a call."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from modipick.client import ClientTls, InvalidRequest, ModiPickClient
from modipick.runtime.auth import bearer
from modipick.stores import StoreAccessDenied
from modipick.v1 import common_pb2, executor_pb2, executor_pb2_grpc, profiler_pb2, profiler_pb2_grpc
from reliability_support import ADMIN_TOKEN, channel, wait_until


def client_tls(pki) -> ClientTls:
    return ClientTls(ca_file=pki.ca, cert_file=pki.client_cert, key_file=pki.client_key)


def test_every_hop_speaks_mutual_tls(rig, figures):
    selector = rig.start_selector([rig.e1.target])
    before = rig.profiles()
    with ModiPickClient(selector.target, tls=client_tls(rig.pki)) as client:  # client -> Selector
        client.wait_ready()
        results = [client.infer(np.full((8, 8), i % 16), 2000) for i in range(20)]  # Selector -> Executor
    served = [r for r in results if not r.run_on_device]
    assert served, results
    # Executor -> Profiler: every served request became an observation of its model
    ran = {r.model for r in served}
    wait_until(lambda: sum(rig.profiles()[m].samples - before[m].samples for m in ran) >= len(served), 10,
               what="observations reported over mutual TLS")
    # Profiler -> Executor: a probe runs on the Executor over mutual TLS
    with channel(rig.profiler.target, rig.pki) as ch:
        probe = profiler_pb2_grpc.ProfilerServiceStub(ch).ProbeModel(profiler_pb2.ProbeModelRequest(
            model=common_pb2.ModelRef(name="cnn-small", version=1), runs=2), timeout=30,
            metadata=bearer(ADMIN_TOKEN))
    assert len(probe.observations) == 2
    refused = {}
    for name, target in (("selector", selector.target), ("executor", rig.e1.target),
                         ("profiler", rig.profiler.target)):
        for how, make in (("plaintext", lambda t: grpc.insecure_channel(t)),
                          ("no client certificate", lambda t: channel(t, rig.pki, cert=False)),
                          ("certificate of another CA", lambda t: channel(t, rig.pki, stranger=True))):
            with make(target) as ch:
                with pytest.raises(grpc.RpcError) as err:
                    executor_pb2_grpc.ExecutorServiceStub(ch).ListModels(executor_pb2.ListModelsRequest(),
                                                                         timeout=3)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE, (name, how, err.value)
            refused[f"{name}: {how}"] = err.value.code().name
    # Redis: the ACL user with its password and client certificate only
    with pytest.raises(StoreAccessDenied):
        rig.redis.store(password="wrong", timeouts=1.0, retries=0).load_all()
    rig.stop_selector(selector)
    figures.record("transport_security", served_over_mtls=len(served), refused_connections=len(refused),
                   refused=refused)


@pytest.mark.parametrize("metadata, code", [
    ((), grpc.StatusCode.UNAUTHENTICATED),
    (bearer("not-the-token"), grpc.StatusCode.PERMISSION_DENIED),
])
def test_admin_rpcs_refuse_callers_without_the_token(rig, metadata, code):
    ref = common_pb2.ModelRef(name="admin-check", version=1)
    calls = [("RegisterModel", profiler_pb2.RegisterModelRequest(model=ref, declared_accuracy=50, skip_warmup=True)),
             ("DeregisterModel", profiler_pb2.DeregisterModelRequest(model=ref)),
             ("ProbeModel", profiler_pb2.ProbeModelRequest(model=ref, runs=1))]
    with channel(rig.profiler.target, rig.pki) as ch:
        stub = profiler_pb2_grpc.ProfilerServiceStub(ch)
        for method, request in calls:
            with pytest.raises(grpc.RpcError) as err:
                getattr(stub, method)(request, timeout=5, metadata=metadata)
            assert err.value.code() == code, method
            assert ADMIN_TOKEN not in (err.value.details() or "")
        assert "admin-check" not in rig.profiles()
        stub.ListProfiles(profiler_pb2.ListProfilesRequest(), timeout=5)  # the data path needs no token


def test_admin_rpcs_pass_with_the_token(rig):
    ref = common_pb2.ModelRef(name="admin-check", version=1)
    with channel(rig.profiler.target, rig.pki) as ch:
        stub = profiler_pb2_grpc.ProfilerServiceStub(ch)
        stub.RegisterModel(profiler_pb2.RegisterModelRequest(model=ref, declared_accuracy=50, skip_warmup=True),
                           timeout=5, metadata=bearer(ADMIN_TOKEN))
        assert "admin-check" in rig.profiles()
        stub.DeregisterModel(profiler_pb2.DeregisterModelRequest(model=ref), timeout=5,
                             metadata=bearer(ADMIN_TOKEN))
    assert "admin-check" not in rig.profiles()


def test_message_size_limits_hold_on_both_ends(rig, figures):
    limit = 64 * 1024
    # (the Executor as a dns:/// target: one replica whose channel balances over what the name resolves to)
    selector = rig.start_selector([f"dns:///{rig.e1.target}"], max_message_bytes=limit)
    big = common_pb2.Input(encoded_image=b"\x89PNG\r\n\x1a\n" + bytes(100 * 1024))
    outcomes = {}
    try:
        with ModiPickClient(selector.target, tls=client_tls(rig.pki)) as client:  # the server's limit
            client.wait_ready()
            with pytest.raises(InvalidRequest, match="larger than max") as err:
                client.infer(big, 2000)
            outcomes["server receives > limit"] = err.value.code.name
        with ModiPickClient(selector.target, tls=client_tls(rig.pki), max_message_bytes=32 * 1024) as client:
            with pytest.raises(InvalidRequest, match="larger than max") as err:  # the client's own limit
                client.infer(common_pb2.Input(encoded_image=bytes(40 * 1024)), 2000)
            outcomes["client sends > its limit"] = err.value.code.name
            assert not client.infer(np.zeros((8, 8)), 2000).run_on_device  # within both limits: served
    finally:
        rig.stop_selector(selector)
    from modipick.executor.__main__ import parse_settings as executor_settings
    from modipick.profiler.__main__ import parse_settings as profiler_settings
    from modipick.selector.__main__ import parse_settings as selector_settings

    flag = ["--max-message-bytes", "65536"]
    assert selector_settings(flag)[0].max_message_bytes == limit
    assert profiler_settings(flag)[0].max_message_bytes == limit
    assert executor_settings([*flag, "--model-base", str(rig.pool)])[0].max_message_bytes == limit
    figures.record("message_limits", limit_bytes=limit, outcomes=outcomes)
