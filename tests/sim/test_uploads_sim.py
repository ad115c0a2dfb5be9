"""`modipick sim uploads` on small bandwidth traces written here (Pensieve's "seconds<TAB>Mbps")."""

import csv
from pathlib import Path

import numpy as np
import pytest

from modipick.sim.payloads import ORIGINAL, PAPER_IMAGE_BYTES, measure_ladder
from modipick.sim.uploadsim import (TraceSet, UploadConfig, load_sized_models, simulate)


def write_trace(path: Path, mbps: list[float]) -> Path:
    path.write_text("".join(f"{t}\t{r}\n" for t, r in enumerate(mbps)), encoding="utf-8")
    return path


@pytest.fixture
def swinging(tmp_path) -> Path:
    # 3G-like: 2 Mbit/s for 20 s, 0.6 Mbit/s for 20 s, repeated
    return write_trace(tmp_path / "swing", ([2.0] * 20 + [0.6] * 20) * 3)


def rows_by(rows):
    return {(r.sla_ms, r.policy): r for r in rows}


def test_ladder_is_measured_from_real_jpegs_and_grows_with_size():
    ladder = measure_ladder((96, 224, 331), 90)
    sizes = [p.bytes for p in ladder]
    assert sizes[0] < sizes[1] < sizes[2] < PAPER_IMAGE_BYTES
    assert 2_000 < sizes[0] < 8_000 and ladder[-1].input_size == ORIGINAL


def test_packaged_models_declare_their_input_size_and_published_accuracy():
    models = {m.candidate.name: m for m in load_sized_models("sized")}
    assert models["MobileNetV1 1.0 128"].input_size == 128
    assert models["MobileNetV1 1.0 128"].candidate.accuracy == 65.2  # slim table, not the 224 px 70.9
    assert models["MobileNetV2 0.35 96"].candidate.accuracy == 45.5
    assert models["NasNet Large"].input_size == 331


def test_policies_on_the_same_draws(swinging):
    ladder = measure_ladder((96, 160, 224, 331), 90)
    cfg = UploadConfig(slas=(150.0, 300.0), requests=400, interval_ms=500.0, base_ms=20.0)
    rows = rows_by(simulate(TraceSet("swing", (swinging,)), ladder, load_sized_models("sized"), cfg))
    for sla in (150.0, 300.0):
        oracle, adaptive, best = rows[sla, "oracle"], rows[sla, "adaptive"], rows[sla, "best_fixed"]
        fixed = [rows[sla, f"fixed_{s}"] for s in (96, 160, 224, 331)]
        assert best.effective_pct == max(f.effective_pct for f in fixed)
        for r in (*fixed, adaptive, rows[sla, "paper_330KB"]):
            assert r.effective_server_pct <= oracle.effective_server_pct + 1e-9  # nothing beats hindsight
            assert r.effective_pct >= r.effective_server_pct
    # 330 KB at 0.6-2 Mbit/s takes 1.3-4.4 s: never within 300 ms; the device answers instead (T_D 150 ms)
    paper = rows[300.0, "paper_330KB"]
    assert paper.attainment_pct == 0.0 and paper.effective_pct == pytest.approx(49.8)
    assert rows[150.0, "adaptive"].effective_pct > rows[150.0, "best_fixed"].effective_pct


def test_device_answers_only_count_when_t_d_fits_the_sla(swinging):
    ladder = measure_ladder((96,), 90)
    cfg = UploadConfig(slas=(100.0, 200.0), requests=100, default_size=96)
    rows = rows_by(simulate(TraceSet("swing", (swinging,)), ladder, load_sized_models("sized"), cfg))
    assert rows[100.0, "paper_330KB"].effective_pct == 0.0  # T_D = 150 ms > SLA
    assert rows[200.0, "paper_330KB"].answered_pct == 100.0


def test_cli_writes_outputs_and_checks_targets(run_sim, swinging, tmp_path):
    out = tmp_path / "out"
    res = run_sim("uploads", "--out", str(out), "--traces", f"swing={swinging}", "--requests", "200",
                  "--sla", "150,300", "--sizes", "96,224", "--quiet")
    assert res.code == 0, res.err
    with (out / "uploads.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert {r["policy"] for r in rows} >= {"paper_330KB", "fixed_96", "fixed_224", "best_fixed", "adaptive", "oracle"}
    assert (out / "uploads_swing.png").stat().st_size > 0
    assert "adaptive >= 95% of oracle" in (out / "targets.md").read_text()
    with (out / "payloads.csv").open() as fh:
        assert [r["input_size"] for r in csv.DictReader(fh)] == ["96", "224", "original"]


@pytest.mark.parametrize("argv, message", [
    (("--traces", "nowhere=/nonexistent/*"), "no file matches"),
    (("--traces", "mars"), "expected NAME=GLOB"),
    (("--device", "fast"), "--device 'fast'"),
    (("--sizes", "96,x"), "--sizes"),
    (("--default-size", "100"), "--default-size 100"),
    (("--policy", "oracle"), "--policy 'oracle'"),
])
def test_bad_input_is_one_line_and_exit_2(run_sim, tmp_path, swinging, argv, message):
    args = ["uploads", "--out", str(tmp_path / "o"), "--quiet"]
    if "--traces" not in argv:
        args += ["--traces", f"swing={swinging}"]
    res = run_sim(*args, *argv)
    assert res.code == 2 and len(res.err_lines) == 1 and message in res.err, res.err


def test_the_same_seed_gives_the_same_rows(swinging):
    ladder = measure_ladder((96, 224), 90)
    cfg = UploadConfig(slas=(200.0,), requests=100)
    a = simulate(TraceSet("s", (swinging,)), ladder, load_sized_models("sized"), cfg)
    b = simulate(TraceSet("s", (swinging,)), ladder, load_sized_models("sized"), cfg)
    assert np.array_equal([r.effective_pct for r in a], [r.effective_pct for r in b])
