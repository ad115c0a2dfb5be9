"""The client SDK and `modipick infer` against the live suite (real Selector, Executor, models)."""

from __future__ import annotations

import asyncio
import io
import json

import numpy as np
import pytest
from PIL import Image

from modipick.client import (AsyncModiPickClient, ClientTls, InvalidRequest, ModiPickClient, ModiPickError,
                             SlaExpired, Unavailable)
from modipick.client.cli import main as infer_main

SLA_MS = 5000.0  # not what these tests are about (see the first)


@pytest.fixture(scope="module")
def digits():
    from modipick.zoo.digits import held_out_digits

    return held_out_digits()


def png_of(image: np.ndarray) -> bytes:
    """A sklearn digit (0..16) as an 8-bit grayscale PNG (the Executor scales it back)."""
    buf = io.BytesIO()
    Image.fromarray(np.round(image.reshape(8, 8) * 255 / 16).astype(np.uint8), mode="L").save(buf, "PNG")
    return buf.getvalue()


def test_sync_client_predicts_real_digits_from_arrays_and_pngs(live_suite, digits):
    images, labels = digits
    # the SLA is not what is tested here: generous enough that a stalled second on a busy machine
    # (one DEADLINE_EXCEEDED at 1000 ms under stress-ng) does not fail a test about predictions
    with ModiPickClient(live_suite.selector_target) as client:
        client.wait_ready()
        arrays = [client.infer(images[i], SLA_MS) for i in range(20)]
        pngs = [client.infer(png_of(images[i]), SLA_MS) for i in range(20)]
    for results in (arrays, pngs):
        assert all(not r.run_on_device and r.model and r.version >= 1 for r in results)
        assert sum(r.label == labels[i] for i, r in enumerate(results)) >= 16  # ModiPick explores weaker models too
        for r in results:
            assert r.reason in ("base", "explored", "fallback")
            assert len(r.scores) == 10 and r.score == pytest.approx(max(r.scores))
            assert r.e2e_ms >= r.timings.server_ms > r.timings.execution_ms > 0
            assert r.met_sla and r.request_id


def test_async_client_matches_the_sync_one(live_suite, digits):
    images, labels = digits

    async def scenario():
        async with AsyncModiPickClient(live_suite.selector_target) as client:
            await client.wait_ready()
            results = await asyncio.gather(*(client.infer(images[i], SLA_MS, label=int(labels[i]))
                                             for i in range(16)))
            assert await client.report_outcome(results[0], int(labels[0]))
            return results

    results = asyncio.run(scenario())
    assert sum(r.label == labels[i] for i, r in enumerate(results)) >= 13
    assert len({r.request_id for r in results}) == 16


def test_typed_errors(live_suite, digits):
    images, _ = digits
    with ModiPickClient(live_suite.selector_target) as client:
        client.wait_ready()
        with pytest.raises(InvalidRequest, match="policy") as err:
            client.infer(images[0], 500, policy="no-such-policy", request_id="rid-typed")
        assert err.value.request_id == "rid-typed"
        with pytest.raises(InvalidRequest, match="sla_ms"):
            client.infer(images[0], float("nan"))
        with pytest.raises(InvalidRequest, match="image"):
            client.infer("not an image", 500)
        # the emulated upload uses up the SLA: the deadline fires (here or in flight)
        with pytest.raises(SlaExpired):
            client.infer(images[0], 50, upload_delay_ms=49.9)
    # the paper's budget (SLA - 2 x upload < 0); risk_aware may have learned the short loopback reply.
    # The client waits past the SLA (slack): the 40 ms the upload leaves must not decide, on a busy
    # machine, whether the Selector's answer arrives
    with ModiPickClient(live_suite.selector_target, deadline_slack_ms=1000) as client:
        on_device = client.infer(images[0], 100, upload_delay_ms=60, policy="modipick")
        assert on_device.run_on_device and not client.report_outcome(on_device, 3)
    with ModiPickClient("127.0.0.1:1") as nobody:
        with pytest.raises(Unavailable):
            nobody.infer(images[0], 2000)


def test_message_size_limits_on_both_ends(live_suite):
    big = b"\x89PNG\r\n\x1a\n" + bytes(17 * 1024 * 1024)  # over the Selector's 16 MiB default
    with ModiPickClient(live_suite.selector_target, max_message_bytes=64 * 1024 * 1024) as client:
        with pytest.raises(InvalidRequest, match="larger than max"):
            client.infer(big, 5000)
    with ModiPickClient(live_suite.selector_target, max_message_bytes=1024) as small:
        with pytest.raises(InvalidRequest, match="larger than max"):
            small.infer(b"\x89PNG\r\n\x1a\n" + bytes(4096), 5000)


def test_mutual_tls(live_suite, digits, tmp_path):
    from certs_support import make_certs

    from modipick.runtime.tls import TlsConfig

    certs = make_certs(tmp_path / "certs")
    app = live_suite.start_selector(address="127.0.0.1:0",
                                    server_tls=TlsConfig(certs.server_cert, certs.server_key, certs.ca))
    target = f"localhost:{app.server.port}"
    tls = ClientTls(ca_file=certs.ca, cert_file=certs.client_cert, key_file=certs.client_key)
    with ModiPickClient(target, tls=tls) as client:
        client.wait_ready()
        assert not client.infer(digits[0][0], 1000).run_on_device
    with ModiPickClient(target, tls=ClientTls(ca_file=certs.ca)) as no_client_cert:
        with pytest.raises(ModiPickError):
            no_client_cert.infer(digits[0][0], 2000)


def test_cli_prints_the_result(live_suite, digits, tmp_path, capsys):
    images, labels = digits
    path = tmp_path / "digit.png"
    path.write_bytes(png_of(images[3]))
    assert infer_main([str(path), "--sla", "1000", "--target", live_suite.selector_target,
                       "--label", str(labels[3])]) == 0
    out = [line for line in capsys.readouterr().out.splitlines() if line.startswith("prediction")]  # not logs
    assert len(out) == 1 and out[0].split()[1] in "0123456789" and "model " in out[0] and "e2e" in out[0]
    np.save(tmp_path / "digit.npy", images[3])
    assert infer_main([str(tmp_path / "digit.npy"), "--sla", "1000", "--target", live_suite.selector_target,
                       "--json"]) == 0
    doc = json.loads([line for line in capsys.readouterr().out.splitlines() if line.startswith("{")][-1])
    assert 0 <= doc["label"] <= 9 and doc["met_sla"] and doc["timings"]["execution_ms"] > 0 and doc["model"]
    assert infer_main([str(path), "--sla", "1000", "--target", live_suite.selector_target,
                       "--policy", "oracle"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "oracle" in err
