"""Executors over real gRPC on loopback, on the real digits pool, with both backends.

The asyncio services run on one background event loop (`loop_thread`); tests talk to them with
ordinary blocking gRPC stubs, so each test reads top to bottom.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import grpc
import pytest
from executor_support import LoopThread, RecordingSink, SlowBackend, start_app

from modipick.v1 import executor_pb2_grpc


@pytest.fixture(scope="session")
def loop_thread():
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture(scope="session")
def held_out():
    from modipick.zoo.digits import held_out_digits

    return held_out_digits()


@pytest.fixture(scope="module")
def embedded_executor(loop_thread, digits_pool):
    from modipick.executor.app import ExecutorSettings

    app = start_app(loop_thread, ExecutorSettings(model_base=str(digits_pool), max_concurrency=2, max_queue=8,
                                                  grace_s=0.5))
    yield app
    loop_thread.run(app.stop(0))


@pytest.fixture(scope="module")
def tfserving_double(digits_pool):
    from tfserving_double.server import TFServingDouble

    double = TFServingDouble(digits_pool).start()
    yield double
    double.stop()


@pytest.fixture(scope="module")
def tfserving_executor(loop_thread, digits_pool, tfserving_double):
    from modipick.executor.app import ExecutorSettings

    app = start_app(loop_thread, ExecutorSettings(backend="tfserving", tfserving_target=tfserving_double.target,
                                                  model_base=str(digits_pool), max_concurrency=2, max_queue=8,
                                                  grace_s=0.5))
    yield app
    loop_thread.run(app.stop(0))


@pytest.fixture
def stub_for():
    """stub_for(app) -> a blocking ExecutorService stub over a real channel (closed after the test)."""
    channels: list[grpc.Channel] = []

    def make(app) -> executor_pb2_grpc.ExecutorServiceStub:
        channel = grpc.insecure_channel(app.target)
        channels.append(channel)
        return executor_pb2_grpc.ExecutorServiceStub(channel)

    yield make
    for channel in channels:
        channel.close()


@pytest.fixture(scope="module")
def versioned_pool(digits_pool, tmp_path_factory) -> Path:
    """One model "digit" with two real versions (1 = mlp-tiny, 2 = cnn-large) and labels
    stable -> 1, canary -> 2, served by a models.config with a specific-versions policy."""
    from modipick.zoo.layout import ServedModel, write_models_config

    base = tmp_path_factory.mktemp("versioned")
    shutil.copytree(digits_pool / "mlp-tiny" / "1", base / "digit" / "1")
    shutil.copytree(digits_pool / "cnn-large" / "1", base / "digit" / "2")
    write_models_config(base, [ServedModel("digit", str(base / "digit"), versions=(1, 2),
                                           version_labels={"stable": 1, "canary": 2})])
    return base


@pytest.fixture
def slow_executor(loop_thread, digits_pool):
    """slow_executor(delay_s) -> (app, backend, sink): cnn-small made slower by delay_s per run."""
    from modipick.executor.app import ExecutorSettings
    from modipick.executor.backends.embedded import EmbeddedBackend

    apps = []

    def make(delay_s: float, *, max_concurrency: int = 1, max_queue: int = 4, address: str = "127.0.0.1:0",
             grace_s: float = 0.2):
        backend = SlowBackend(EmbeddedBackend(digits_pool, models=["cnn-small"]), delay_s)
        sink = RecordingSink()
        app = start_app(loop_thread, ExecutorSettings(address=address, model_base=str(digits_pool),
                                                      max_concurrency=max_concurrency, max_queue=max_queue,
                                                      grace_s=grace_s),
                        backend=backend, sink=sink)
        apps.append(app)
        return app, backend, sink

    yield make
    for app in apps:
        loop_thread.run(app.stop(0))


@pytest.fixture
def transport_over(loop_thread):
    """transport_over(target, build) -> build(stub) on the loop thread, over a real channel to
    target (the Selector's Execute transports); closed after the test."""
    from modipick.runtime.channels import aio_channel

    made = []

    def make(target: str, build, max_message_bytes: int = 16 * 1024 * 1024):
        async def create():
            channel = aio_channel(target, max_message_bytes=max_message_bytes)
            transport = build(executor_pb2_grpc.ExecutorServiceStub(channel))
            made.append((transport, channel))
            return transport

        return loop_thread.run(create())

    yield make

    async def close_all() -> None:
        for transport, channel in made:
            await transport.close()
            await channel.close()

    loop_thread.run(close_all())
