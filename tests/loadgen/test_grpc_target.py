"""The load generator's gRPC target on the client SDK: what a run records of a served reply, of a
request the Selector refuses and of one whose SLA was spent before sending, and its outcome
reports, against the trivial Selector over real gRPC on loopback."""

from __future__ import annotations

import asyncio
import time

import pytest

from modipick.loadgen.datasets import DigitsSource
from modipick.loadgen.grpc_target import GrpcSelectorTarget
from modipick.loadgen.target import OutgoingRequest


def test_replies_refusals_and_reports_as_a_run_records_them(trivial):
    image = DigitsSource(limit=5).sample(0).input

    def request(rid: str, *, client: str, timeout_s: float | None = 30.0, policy: str = "dynamic_greedy",
                late_s: float = 0.0) -> OutgoingRequest:
        return OutgoingRequest(rid, image, 1000.0, time.time() - late_s, timeout_s, policy=policy, client_id=client)

    async def drive():
        target = GrpcSelectorTarget(trivial.address)
        await target.wait_ready()
        try:
            served = request("lg-served", client="lte/c-1", late_s=0.040)  # its 40 ms upload leg is spent
            replies = [await target.send(served),
                       await target.send(request("lg-open", client="lte/c-2", timeout_s=None)),
                       await target.send(request("lg-bad", client="lte/c-3", policy="nonsense")),
                       await target.send(request("lg-spent", client="lte/c-4", timeout_s=0.0))]
            await target.report_outcome(served, replies[0], 55.0, 3)
            return replies
        finally:
            await target.close()

    ok, unbounded, refused, spent = asyncio.run(drive())
    assert ok.ok and unbounded.ok and ok.disposition == "served" and ok.model and ok.version == 1
    assert ok.reason in ("base", "explored", "fallback") and ok.predicted is not None
    # the stamp is the intended send time: the Selector sees the spent upload leg and budgets for it
    assert ok.upload_ms >= 40.0 and ok.budget_ms == pytest.approx(1000.0 - 2 * ok.upload_ms, abs=1e-3)
    assert ok.server_ms is not None and ok.execution_ms is not None and ok.return_leg_source == ""
    assert refused.status == "INVALID_ARGUMENT" and "unknown policy 'nonsense'" in refused.error
    assert refused.disposition == "" and refused.model == ""
    assert spent.status == "DEADLINE_EXCEEDED" and "before the request was sent" in spent.error
    # sent under each request's own client id; the spent one never left; one report, under its client
    assert dict(trivial.selector.clients) == {"lte/c-1": 1, "lte/c-2": 1, "lte/c-3": 1}
    assert dict(trivial.selector.reporters) == {"lte/c-1": 1} and trivial.selector.outcomes == 1


def test_no_selector_answering_is_a_connection_error():
    from fixtures_redis import free_port

    async def drive():
        target = GrpcSelectorTarget(f"127.0.0.1:{free_port()}")
        try:
            await target.wait_ready(timeout_s=0.3)
        finally:
            await target.close()

    with pytest.raises(ConnectionError, match="no Selector answering"):
        asyncio.run(drive())
