"""The app side of the SDK: the on-device fallback on LiteRT (a real .tflite from the zoo) and the
upload planner, against a Selector on loopback speaking the real protocol (loadgen's trivial one)."""

from __future__ import annotations

import asyncio
import io
import threading

import numpy as np
import pytest
from PIL import Image

from fixtures_zoo import build_cached, zoo_cache_root
from modipick.client import AsyncModiPickClient, InvalidRequest, ModiPickClient
from modipick.client.mobile import AsyncMobileClient, MobileClient
from modipick.client.ondevice import DeviceProfile, LiteRTRunner
from modipick.client.uploads import UploadPlanner, encode_jpeg
from modipick.core.uploads import DeviceFallback, UploadMenu, UploadVariant
from modipick.loadgen.trivial import FakeModel, start_trivial_server

DEVICE_MODEL = "mobilenet-v1-025-128"
T_D_MS = 120.0  # the emulated phone's time for the device model in these tests


class ServerThread:
    def __init__(self, **options) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.server, port, self.selector = asyncio.run_coroutine_threadsafe(
            start_trivial_server("127.0.0.1:0", know_digits=False, **options), self._loop).result(timeout=30)
        self.address = f"127.0.0.1:{port}"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(None), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@pytest.fixture
def selector():
    started = []

    def start(**options) -> ServerThread:
        started.append(ServerThread(**options))
        return started[-1]

    yield start
    for s in started:
        s.stop()


@pytest.fixture(scope="module")
def tflite_model():
    base = build_cached("imagenet-sizes", zoo_cache_root() / "imagenet-sizes-device", "--models", DEVICE_MODEL,
                        "--tflite")
    path = base / "tflite" / f"{DEVICE_MODEL}.tflite"
    assert path.is_file()
    return path


@pytest.fixture(scope="module")
def runner(tflite_model):
    here = LiteRTRunner(tflite_model, accuracy=41.5, profile=DeviceProfile("this machine", 1.0))
    phone = DeviceProfile.from_reference("test phone", T_D_MS, here.host_ms)
    return LiteRTRunner(tflite_model, accuracy=41.5, profile=phone, host_ms=here.host_ms)


@pytest.fixture(scope="module")
def photo() -> bytes:
    from sklearn.datasets import load_sample_images

    buf = io.BytesIO()
    Image.fromarray(load_sample_images().images[1]).save(buf, "JPEG", quality=95)
    return buf.getvalue()


SLOW_ONLY = (FakeModel("slow", 90.0, 2_000.0, 1.0),)
FAST = (FakeModel("fast", 70.0, 1.0, 0.1), FakeModel("slow", 90.0, 2_000.0, 1.0))


def test_litert_runner_classifies_a_photo_and_emulates_the_phone(runner, photo):
    assert runner.input_size == 128 and runner.expected_ms == pytest.approx(T_D_MS, rel=1e-6)
    answer = runner.run(photo)
    assert 0 <= answer.label < 1000 and 0.0 <= answer.score <= 1.0
    # the phone is slower: the answer waits out slowdown x this machine's time of this very run
    assert answer.latency_ms >= answer.host_ms * runner.profile.slowdown
    cancelled = threading.Event()
    cancelled.set()
    assert runner.run(photo, cancelled) is None


def test_run_on_device_answer_comes_from_the_device(selector, runner, photo):
    server = selector(pool=SLOW_ONLY, default_policy="risk_aware")
    with MobileClient(ModiPickClient(server.address), runner=runner, race=False) as client:
        client.client.wait_ready()
        answer = client.infer(photo, 500)
    assert answer.source == "device" and answer.server is not None and answer.server.run_on_device
    assert answer.label == answer.device.label and answer.latency_ms >= answer.device.latency_ms


def test_a_served_answer_wins_and_the_device_never_starts(selector, runner, photo):
    server = selector(pool=FAST, default_policy="risk_aware")
    before = runner.runs
    with MobileClient(ModiPickClient(server.address), runner=runner, race=True) as client:
        client.client.wait_ready()
        answers = [client.infer(photo, 2_000) for _ in range(3)]
    assert [a.source for a in answers] == ["server"] * 3
    assert all(a.server.model == "fast" and a.device is None for a in answers)
    assert runner.runs == before


def test_race_starts_the_device_when_time_left_falls_to_t_d(selector, runner, photo):
    # a 350 ms upload (emulated): the Selector only learns at 350 ms that nothing fits
    server = selector(pool=FAST, default_policy="risk_aware")
    sla = 400.0
    before = runner.runs
    with MobileClient(ModiPickClient(server.address), runner=runner, race=True) as client:
        client.client.wait_ready()
        answer = client.infer(photo, sla, upload_delay_ms=350.0)
    assert answer.source == "device" and runner.runs == before + 1
    assert answer.latency_ms >= sla - runner.expected_ms  # not started before T_D was left
    assert answer.server is None or answer.server.run_on_device


def test_without_a_runner_a_decline_is_no_answer_and_errors_raise(selector, photo):
    server = selector(pool=SLOW_ONLY, default_policy="risk_aware")
    with MobileClient(ModiPickClient(server.address)) as client:
        assert client.infer(photo, 300).source == "none"
        with pytest.raises(InvalidRequest):
            client.infer(b"not an image", 300)


def test_planner_sends_the_default_first_then_what_the_bandwidth_allows(selector, photo):
    server = selector(pool=FAST, default_policy="risk_aware")
    fast, slow = FAST[0].candidate(), FAST[1].candidate()
    menu = UploadMenu((UploadVariant(96, 3_800, (fast,)), UploadVariant(224, 15_000, (fast, slow))), 224)
    planner = UploadPlanner(menu, device=DeviceFallback(41.5, T_D_MS), reply_ms=1.0)
    with MobileClient(ModiPickClient(server.address), planner=planner) as client:
        client.client.wait_ready()
        first = client.infer(photo, 300)
        second = client.infer(photo, 300)
    assert not first.upload.estimated and first.upload.variant.input_size == 224
    assert first.payload_bytes == len(encode_jpeg(photo, 224))
    assert planner.bandwidth.known
    # loopback is fast, the 2 s model never fits 300 ms: both sizes lead to "fast"; ties go to the smaller
    assert second.upload.estimated and second.upload.variant.input_size == 96
    assert second.source == "server" and second.payload_bytes == len(encode_jpeg(photo, 96))


def test_async_client_falls_back_like_the_sync_one(selector, runner, photo):
    server = selector(pool=SLOW_ONLY, default_policy="risk_aware")

    async def scenario():
        async with AsyncMobileClient(AsyncModiPickClient(server.address), runner=runner) as client:
            await client.client.wait_ready()
            return await client.infer(photo, 500)

    answer = asyncio.run(scenario())
    assert answer.source == "device" and answer.server.run_on_device


def test_encode_jpeg_resizes_the_centre_square(photo):
    small = Image.open(io.BytesIO(encode_jpeg(photo, 96)))
    assert small.size == (96, 96) and small.format == "JPEG"
    assert encode_jpeg(photo, 0) == photo
    assert Image.open(io.BytesIO(encode_jpeg(np.zeros((30, 50, 3), np.uint8), 16))).size == (16, 16)
