"""The app's view of one inference: choose the upload, ask the Selector, and fall back to the
device's own model, so the user gets an answer within the SLA whenever the device can give one.

    client = MobileClient(ModiPickClient(target), runner=LiteRTRunner(...), planner=UploadPlanner(menu))
    answer = client.infer(photo, sla_ms=300)   # answer.source: "server" | "device" | "none"

Per request:
  1. with a planner, the input size is chosen (modipick.core.uploads) and the photo resized and
     JPEG-encoded at it; the upload the Selector measured teaches the planner the bandwidth;
  2. the Selector is asked within the SLA;
  3. the device's model runs when the Selector answers RUN_ON_DEVICE or the call fails, and with
     `race` (MDInference-style) it also starts when the time left falls to T_D (runner.expected_ms)
     without a server answer; whichever valid answer comes first is returned.
`AsyncMobileClient` does the same on asyncio (the device's model runs in a worker thread).
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Callable

from modipick.client.errors import InvalidRequest, ModiPickError
from modipick.client.ondevice import DeviceAnswer, OnDeviceRunner
from modipick.client.result import InferResult
from modipick.client.uploads import UploadPlanner
from modipick.core.uploads import UploadChoice


@dataclass(frozen=True, slots=True)
class AppAnswer:
    """What the user sees: which side answered, with what, and when (ms from the call)."""

    source: str                     # "server" | "device" | "none"
    sla_ms: float
    latency_ms: float
    label: int | None = None
    score: float = 0.0
    server: InferResult | None = None   # the Selector's reply, when one came before the answer
    device: DeviceAnswer | None = None
    upload: UploadChoice | None = None  # the input size chosen (None: the image was sent as given)
    payload_bytes: int = 0
    error: ModiPickError | None = None  # why the server did not answer, when it failed

    @property
    def met_sla(self) -> bool:
        return self.source != "none" and self.latency_ms <= self.sla_ms


class _Request:
    """One request's shared state between the caller and the device's worker."""

    def __init__(self, sla_ms: float, clock: Callable[[], float]) -> None:
        self.sla_ms = sla_ms
        self.clock = clock
        self.started = clock()
        self.go = threading.Event()      # start the device now
        self.cancel = threading.Event()  # the answer is in: the device need not run (or finish)

    def elapsed_ms(self) -> float:
        return (self.clock() - self.started) * 1000.0

    def device_start_delay_s(self, runner: OnDeviceRunner, race: bool) -> float | None:
        """Seconds until the device starts unasked (T_D before the SLA's end); None: only when asked."""
        if not race:
            return None
        return max(0.0, (self.sla_ms - runner.expected_ms) - self.elapsed_ms()) / 1000.0


def _device_job(runner: OnDeviceRunner, image: Any, req: _Request, delay_s: float | None) -> DeviceAnswer | None:
    req.go.wait(delay_s)
    if req.cancel.is_set():
        return None
    return runner.run(image, req.cancel)


def _prepare(planner: UploadPlanner | None, image: Any, sla_ms: float) -> tuple[Any, UploadChoice | None, int]:
    if planner is None:
        return image, None, len(image) if isinstance(image, (bytes, bytearray)) else 0
    plan = planner.plan(image, sla_ms)
    return plan.payload, plan.choice, len(plan.payload)


def _learn(planner: UploadPlanner | None, payload_bytes: int, result: InferResult | None) -> None:
    if planner is not None and result is not None and result.timings.upload_ms > 0:
        planner.observe(payload_bytes, result.timings.upload_ms)


def _server_answer(req: _Request, r: InferResult, upload: UploadChoice | None, nbytes: int) -> AppAnswer:
    return AppAnswer("server", req.sla_ms, req.elapsed_ms(), r.label, r.score, server=r, upload=upload,
                     payload_bytes=nbytes)


def _device_answer(req: _Request, d: DeviceAnswer, server: InferResult | None, error: ModiPickError | None,
                   upload: UploadChoice | None, nbytes: int) -> AppAnswer:
    return AppAnswer("device", req.sla_ms, req.elapsed_ms(), d.label, d.score, server=server, device=d,
                     upload=upload, payload_bytes=nbytes, error=error)


class MobileClient:
    def __init__(self, client: Any, *, runner: OnDeviceRunner | None = None, planner: UploadPlanner | None = None,
                 race: bool = True, clock: Callable[[], float] = time.perf_counter) -> None:
        self.client = client
        self.runner = runner
        self.planner = planner
        self.race = race
        self._clock = clock
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="modipick-mobile")

    def infer(self, image: Any, sla_ms: float, **infer_kwargs: Any) -> AppAnswer:
        req = _Request(float(sla_ms), self._clock)
        payload, upload, nbytes = _prepare(self.planner, image, req.sla_ms)
        server_f: Future = self._pool.submit(self.client.infer, payload, req.sla_ms, **infer_kwargs)
        device_f: Future | None = None
        if self.runner is not None and self.race:
            device_f = self._pool.submit(_device_job, self.runner, image, req,
                                         req.device_start_delay_s(self.runner, True))
        pending = {f for f in (server_f, device_f) if f is not None}
        server: InferResult | None = None
        error: ModiPickError | None = None
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                if server_f in done:
                    try:
                        server = server_f.result()
                    except InvalidRequest:
                        raise
                    except ModiPickError as exc:
                        error = exc
                    _learn(self.planner, nbytes, server)
                    if server is not None and not server.run_on_device:
                        return _server_answer(req, server, upload, nbytes)
                    if self.runner is None:
                        break
                    if device_f is None:
                        device_f = self._pool.submit(_device_job, self.runner, image, req, None)
                        pending.add(device_f)
                    req.go.set()
                if device_f is not None and device_f in done:
                    answer = device_f.result()
                    if answer is not None:
                        return _device_answer(req, answer, server, error, upload, nbytes)
        finally:
            req.cancel.set()
            req.go.set()  # a device job still waiting wakes up, sees cancel, and ends
        if error is not None and self.runner is None:
            raise error
        return AppAnswer("none", req.sla_ms, req.elapsed_ms(), server=server, upload=upload, payload_bytes=nbytes,
                         error=error)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()

    def __enter__(self) -> "MobileClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncMobileClient:
    """MobileClient on asyncio around an AsyncModiPickClient."""

    def __init__(self, client: Any, *, runner: OnDeviceRunner | None = None, planner: UploadPlanner | None = None,
                 race: bool = True, clock: Callable[[], float] = time.perf_counter) -> None:
        self.client = client
        self.runner = runner
        self.planner = planner
        self.race = race
        self._clock = clock
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="modipick-device")

    async def infer(self, image: Any, sla_ms: float, **infer_kwargs: Any) -> AppAnswer:
        loop = asyncio.get_running_loop()
        req = _Request(float(sla_ms), self._clock)
        payload, upload, nbytes = _prepare(self.planner, image, req.sla_ms)
        server_t = asyncio.ensure_future(self.client.infer(payload, req.sla_ms, **infer_kwargs))
        device_t: asyncio.Future | None = None

        def start_device(delay_s: float | None) -> asyncio.Future:
            return loop.run_in_executor(self._pool, _device_job, self.runner, image, req, delay_s)

        if self.runner is not None and self.race:
            device_t = start_device(req.device_start_delay_s(self.runner, True))
        pending = {t for t in (server_t, device_t) if t is not None}
        server: InferResult | None = None
        error: ModiPickError | None = None
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if server_t in done:
                    try:
                        server = server_t.result()
                    except InvalidRequest:
                        raise
                    except ModiPickError as exc:
                        error = exc
                    _learn(self.planner, nbytes, server)
                    if server is not None and not server.run_on_device:
                        return _server_answer(req, server, upload, nbytes)
                    if self.runner is None:
                        break
                    if device_t is None:
                        device_t = start_device(None)
                        pending.add(device_t)
                    req.go.set()
                if device_t is not None and device_t in done:
                    answer = device_t.result()
                    if answer is not None:
                        return _device_answer(req, answer, server, error, upload, nbytes)
        finally:
            req.cancel.set()
            req.go.set()  # a device job still waiting wakes up, sees cancel, and ends
        if error is not None and self.runner is None:
            raise error
        return AppAnswer("none", req.sla_ms, req.elapsed_ms(), server=server, upload=upload, payload_bytes=nbytes,
                         error=error)

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        await self.client.close()

    async def __aenter__(self) -> "AsyncMobileClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
