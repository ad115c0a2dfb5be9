"""Helpers of the executor tests (a background event loop, request builders)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any, Awaitable

import numpy as np

from modipick.v1 import common_pb2, executor_pb2


class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="test-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Awaitable[Any], timeout: float = 120.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


def tensor_input(image: np.ndarray) -> common_pb2.Input:
    array = np.ascontiguousarray(image, dtype=np.float32)
    return common_pb2.Input(tensor=common_pb2.Tensor(dtype="float32", shape=list(array.shape),
                                                     content=array.tobytes()))


def png_input(image: np.ndarray, pixel_max: float = 16.0) -> common_pb2.Input:
    import tensorflow as tf

    pixels = np.clip(np.rint(image * 255.0 / pixel_max), 0, 255).astype(np.uint8)
    return common_pb2.Input(encoded_image=tf.io.encode_png(pixels).numpy())


def execute_request(name: str, image_input: common_pb2.Input, *, version: int = 0, label: str = "",
                    probe: bool = False, request_id: str = "") -> executor_pb2.ExecuteRequest:
    return executor_pb2.ExecuteRequest(
        request_id=request_id, model=common_pb2.ModelRef(name=name, version=version, version_label=label),
        input=image_input, probe=probe)


def run_calls(loop_thread: LoopThread, transport, requests, timeout_s: float = 10.0) -> list:
    """Every request at once through `transport`; each result or the error it raised."""
    async def all_at_once():
        return await asyncio.gather(*(transport(r, timeout_s) for r in requests), return_exceptions=True)

    return loop_thread.run(all_at_once())


def start_app(loop_thread: LoopThread, settings, **kwargs):
    from modipick.executor.app import start_executor

    async def start():
        app = await start_executor(settings, **kwargs)
        wait_ready = getattr(app.backend, "wait_ready", None)
        if wait_ready is not None:
            await wait_ready(120)
        return app

    return loop_thread.run(start())


def saved_model_predict(version_dir: Path, images: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    serve = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    return serve(image=tf.constant(images.astype(np.float32)))["probabilities"].numpy()


class SlowBackend:
    """The real embedded backend, with `delay_s` of extra work before each run."""

    def __init__(self, inner: EmbeddedBackend, delay_s: float) -> None:
        self.inner = inner
        self.delay_s = delay_s
        self.name = "slow-embedded"
        self.finished = 0

    async def start(self):
        await self.inner.start()

    async def wait_ready(self, timeout_s=None):
        await self.inner.wait_ready(timeout_s)

    async def models(self):
        return await self.inner.models()

    async def resolve(self, ref, *, timeout_s=None):
        return await self.inner.resolve(ref, timeout_s=timeout_s)

    async def predict(self, model, batch, **kwargs):
        import asyncio

        await asyncio.sleep(self.delay_s)
        try:
            return await self.inner.predict(model, batch, **kwargs)
        finally:
            self.finished += 1

    async def close(self):
        await self.inner.close()


class RecordingSink:
    def __init__(self) -> None:
        self.observations = []

    def submit(self, observation) -> None:
        self.observations.append(observation)

    async def close(self) -> None:
        return None
