"""The SDK's calls as a gRPC user expects them: metadata, channel arguments, compression and
keepalive reach the wire; UNAVAILABLE before the server processed a call is retried; a failed
outcome report leaves the prediction; the gRPC error stays attached; raw outputs as numpy; the
decision's provenance.
Against a SelectorService double on a real loopback server (scripted failures)."""

from __future__ import annotations

import asyncio
import time

import grpc
import numpy as np
import pytest

from modipick.client import (AsyncModiPickClient, ClientOptions, ModiPickClient, Overloaded, RetryPolicy,
                             SlaExpired, Unavailable)
from modipick.client.core import InferCall
from modipick.runtime.status_details import rich_status
from modipick.v1 import errors_pb2
from client_support import PNG, SCORES, Abort, ByteRelay, SelectorServer


@pytest.fixture
def selector():
    server = SelectorServer()
    yield server
    server.stop()


def test_options_and_call_metadata_and_channel_args_reach_the_server(selector):
    options = ClientOptions(target=selector.target, metadata=(("authorization", "Bearer t0k"),),
                            channel_args=(("grpc.primary_user_agent", "photo-app/2.1"),))
    with ModiPickClient(options=options) as client:
        client.infer(PNG, 1000, request_id="rid-1", metadata=(("x-tenant", "acme"),))

    async def via_aio():
        async with AsyncModiPickClient(options=options) as client:
            await client.infer(PNG, 1000, request_id="rid-2", metadata=(("x-tenant", "umbrella"),))

    asyncio.run(via_aio())
    for seen, tenant, rid in zip(selector.double.infer_metadata, ("acme", "umbrella"), ("rid-1", "rid-2")):
        assert seen["authorization"] == "Bearer t0k" and seen["x-tenant"] == tenant and seen["x-request-id"] == rid
        assert seen["user-agent"].startswith("photo-app/2.1")


def test_the_client_id_travels_as_a_header_for_a_balancer_to_hash(selector):
    """Infer and its report carry x-modipick-client-id (Envoy keeps a client on one replica by it);
    an id that cannot be a header value, or none, sends no header: the message carries it anyway."""
    from modipick.v1.contract import CLIENT_ID_KEY

    for client_id in ("lte/phone-7", "wifi/é", ""):
        with ModiPickClient(options=ClientOptions(target=selector.target, client_id=client_id)) as client:
            client.report_outcome(client.infer(PNG, 1000), 3)
    infers, reports = selector.double.infer_metadata, selector.double.report_metadata
    assert [m.get(CLIENT_ID_KEY) for m in infers] == ["lte/phone-7", None, None]
    assert [m.get(CLIENT_ID_KEY) for m in reports] == ["lte/phone-7", None, None]


def test_compression_of_the_channel_and_of_one_call(selector):
    relay = ByteRelay(selector.port)
    image = PNG + bytes(200_000)  # compresses to almost nothing
    try:
        def sent_by(compression, per_call=None) -> int:
            before = relay.sent
            with ModiPickClient(relay.target, compression=compression) as client:
                client.infer(image, 1000, compression=per_call)
            return relay.sent - before

        plain = sent_by(None)
        gzip_channel = sent_by(grpc.Compression.Gzip)
        gzip_call = sent_by(None, grpc.Compression.Gzip)
    finally:
        relay.close()
    assert plain > 200_000
    assert gzip_channel < 20_000 and gzip_call < 20_000


def test_keepalive_pings_an_idle_connection(selector):
    relay = ByteRelay(selector.port)
    try:
        def idle_bytes(**keepalive) -> int:
            with ModiPickClient(relay.target, **keepalive) as client:
                client.infer(PNG, 1000)
                time.sleep(0.5)  # the call's last frames (window updates) are through
                before = relay.sent
                time.sleep(1.0)
                return relay.sent - before

        quiet = idle_bytes()
        pinged = idle_bytes(keepalive_time_ms=100, keepalive_timeout_ms=5000, keepalive_permit_without_calls=True)
    finally:
        relay.close()
    assert quiet == 0
    assert pinged >= 17  # at least one HTTP/2 PING frame (9 + 8 bytes)


def test_unavailable_before_the_server_processed_the_call_is_retried(selector):
    script = selector.double.script
    script.infer.append(Abort(grpc.StatusCode.UNAVAILABLE, "connection reset"))
    with ModiPickClient(selector.target) as client:
        result = client.infer(PNG, 2000)
    assert result.label == 2 and len(selector.double.infer_metadata) == 2

    script.infer.append(Abort(grpc.StatusCode.UNAVAILABLE, "connection reset"))
    with ModiPickClient(selector.target, retry=None) as client, pytest.raises(Unavailable):
        client.infer(PNG, 2000)
    assert len(selector.double.infer_metadata) == 3


def test_a_processed_unavailable_is_not_retried(selector):
    status = rich_status(grpc.StatusCode.UNAVAILABLE, "no eligible model", errors_pb2.ERROR_REASON_NO_ELIGIBLE_MODEL)
    selector.double.script.infer.append(Abort(status.code, status.details,
                                              (*status.trailing_metadata, ("grpc-retry-pushback-ms", "-1"))))
    with ModiPickClient(selector.target, retry=RetryPolicy(max_attempts=5)) as client, \
            pytest.raises(Unavailable) as err:
        client.infer(PNG, 2000)
    assert err.value.reason == "NO_ELIGIBLE_MODEL" and len(selector.double.infer_metadata) == 1


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL])
def test_a_failed_outcome_report_never_replaces_the_prediction(selector, code):
    script = selector.double.script
    script.report.extend([Abort(code, "profiler down")] * 8)  # every retry fails too
    with ModiPickClient(selector.target) as client:
        result = client.infer(PNG, 2000, label=2)

    async def via_aio():
        async with AsyncModiPickClient(selector.target) as client:
            return await client.infer(PNG, 2000, label=2)

    for r in (result, asyncio.run(via_aio())):
        assert r.label == 2 and r.label_name == "two" and not r.run_on_device
        assert code.name in r.outcome_error and "profiler down" in r.outcome_error
    assert selector.double.reports  # it was tried

    script.report.clear()
    with ModiPickClient(selector.target) as client:
        assert client.infer(PNG, 2000, label=2).outcome_error == ""


def test_the_grpc_error_stays_attached(selector):
    status = rich_status(grpc.StatusCode.RESOURCE_EXHAUSTED, "executor queue full", errors_pb2.ERROR_REASON_OVERLOADED,
                         metadata={"model": "cnn-small:1"}, retry_after_s=0.04)
    selector.double.script.infer.extend([Abort(status.code, status.details, status.trailing_metadata)] * 2)
    with ModiPickClient(selector.target) as client, pytest.raises(Overloaded) as err:
        client.infer(PNG, 2000, request_id="rid-over")

    async def via_aio():
        async with AsyncModiPickClient(selector.target) as client:
            with pytest.raises(Overloaded) as aio_err:
                await client.infer(PNG, 2000, request_id="rid-over")
            return aio_err.value

    for error in (err.value, asyncio.run(via_aio())):
        assert isinstance(error.__cause__, grpc.RpcError)
        assert error.__cause__.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error.details == "executor queue full" and error.request_id == "rid-over"
        assert error.reason == "OVERLOADED" and error.retry_delay_s == pytest.approx(0.04)
        assert error.error_metadata == {"model": "cnn-small:1"}
        assert any(key == "grpc-status-details-bin" for key, _ in error.trailing_metadata)


def test_raw_outputs_beside_the_classification(selector):
    with ModiPickClient(selector.target) as client:
        result = client.infer(PNG, 2000)
    scores = result.as_numpy("scores")
    assert scores.dtype == np.float32 and scores.shape == (1, len(SCORES))
    assert np.allclose(scores[0], SCORES) and int(np.argmax(scores)) == result.label
    with pytest.raises(KeyError, match="scores"):
        result.as_numpy("logits")


def test_the_result_says_whose_return_leg_decided_and_the_chance_of_meeting_the_sla(selector):
    async def via_aio():
        async with AsyncModiPickClient(selector.target) as client:
            return await client.infer(PNG, 2000)

    with ModiPickClient(selector.target) as client:
        result = client.infer(PNG, 2000)
    for answer in (result, asyncio.run(via_aio())):
        assert (answer.return_leg_source, answer.meet_probability) == ("class", 0.8125)
    # a Selector that learns no return legs leaves the enum unset
    from modipick.client.result import from_response
    from modipick.v1 import selector_pb2

    bare = from_response(selector_pb2.InferResponse(disposition=selector_pb2.DISPOSITION_RUN_ON_DEVICE),
                         request_id="r", sla_ms=10.0, e2e_ms=1.0)
    assert (bare.return_leg_source, bare.meet_probability) == ("unspecified", 0.0)


def test_a_scheduled_call_keeps_its_send_stamp_client_id_and_deadline(selector):
    """InferCall.scheduled (an open-loop load generator's call): the stamp is the caller's, the
    deadline the caller's or none, and the outcome is reported under the call's own client id."""
    options = ClientOptions(target=selector.target, client_id="app/default")
    sent_ns = time.time_ns() - 40_000_000  # intended 40 ms ago: its upload leg is spent

    def scheduled(request_id: str, timeout_s: float | None, client_id: str | None) -> InferCall:
        return InferCall.scheduled(options, PNG, 1000, send_time_ns=sent_ns, timeout_s=timeout_s,
                                   request_id=request_id, client_id=client_id)

    with ModiPickClient(options=options) as client:
        call = scheduled("rid-capped", 30.0, "lte/c-7")  # long: a busy machine may stall for seconds
        capped = call.result(client.send(call))  # send: the reply as it came; result: read as the SDK does
        client.report_outcome(capped, 2)

    async def via_aio():
        async with AsyncModiPickClient(options=options) as client:
            call = scheduled("rid-open", None, None)
            unbounded = call.result(await client.send(call))
            with pytest.raises(SlaExpired):
                await client.send(scheduled("rid-spent", 0.0, "lte/c-8"))
            return unbounded

    unbounded = asyncio.run(via_aio())
    first, second = selector.double.infer_requests
    assert [r.request_id for r in (first, second)] == ["rid-capped", "rid-open"]  # the spent one never left
    assert all(r.client_send_time.ToNanoseconds() == sent_ns for r in (first, second))
    assert (first.client_id, second.client_id) == ("lte/c-7", "app/default")
    remaining_capped, remaining_open = selector.double.infer_remaining_s
    # gRPC sends a timeout in whole units of its encoding, rounded up (tens of ms at 30 s): a little over 30 s
    # may arrive; none: infinite
    assert 0.0 < remaining_capped <= 30.5 and (remaining_open is None or remaining_open > 1e9)
    assert capped.e2e_ms >= 40.0 and capped.client_id == "lte/c-7" and unbounded.client_id == "app/default"
    assert capped.return_leg_source == unbounded.return_leg_source == "class"
    (report,) = selector.double.reports
    assert (report.request_id, report.client_id, report.true_label) == ("rid-capped", "lte/c-7", 2)
