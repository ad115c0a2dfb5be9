"""The app side of the SDK against the live suite (real Selector, Executor, digits models): a
served answer, and the device's LiteRT model when the Selector can only decline."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from fixtures_zoo import build_cached, zoo_cache_root
from modipick.client import ModiPickClient
from modipick.client.mobile import MobileClient
from modipick.client.ondevice import DeviceProfile, LiteRTRunner


@pytest.fixture(scope="module")
def tflite_model():
    base = build_cached("imagenet-sizes", zoo_cache_root() / "imagenet-sizes-device", "--models",
                        "mobilenet-v1-025-128", "--tflite")
    return base / "tflite" / "mobilenet-v1-025-128.tflite"


def png_of(image: np.ndarray) -> bytes:
    """A sklearn digit (0..16) as an 8-bit grayscale PNG: the Executor scales it back, the
    device's model takes it as a photo."""
    buf = io.BytesIO()
    Image.fromarray(np.round(image.reshape(8, 8) * 255 / 16).astype(np.uint8), mode="L").save(buf, "PNG")
    return buf.getvalue()


def test_live_suite_serves_and_the_device_answers_what_it_declines(live_suite, tflite_model):
    from modipick.zoo.digits import held_out_digits

    images, labels = held_out_digits()
    runner = LiteRTRunner(tflite_model, accuracy=41.5, profile=DeviceProfile("test phone", 5.0))
    # the client waits past the SLA (slack): the 5 ms the upload below leaves must not decide, on a
    # busy machine, whether the Selector's decline arrives (the Selector budgets from the SLA alone)
    with MobileClient(ModiPickClient(live_suite.selector_target, deadline_slack_ms=1000), runner=runner,
                      race=False) as app:
        app.client.wait_ready()
        served = [app.infer(png_of(images[i]), 2_000) for i in range(10)]
        # a 45 ms upload (emulated) of a 50 ms SLA: nothing fits what is left, the Selector declines
        declined = app.infer(png_of(images[0]), 50.0, upload_delay_ms=45.0)
    assert all(a.source == "server" and a.server.model for a in served)
    assert sum(a.label == labels[i] for i, a in enumerate(served)) >= 7
    assert declined.source == "device" and declined.device is not None
    assert declined.server is not None and declined.server.run_on_device
