"""`modipick demo` tells its story: three SLAs x static greedy / ModiPick / risk_aware on a shipped
LTE trace, every cell readable (on-phone answers and late answers explained, never shown as
errors), a report with its plot, everything torn down; and `make demo` needs no npm."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from fixtures_zoo import build_cached, zoo_cache_root
from suite_support import serving
from modipick.cli.story import LEGEND, Profile, place_slas, story_markdown, story_rows, story_table

ROOT = Path(__file__).resolve().parents[2]
MODIPICK = [sys.executable, "-c", "import sys; from modipick.cli import main; sys.exit(main(sys.argv[1:]))"]


def _record(sla, policy, status="OK", disposition="served", model="", met=False):
    return SimpleNamespace(sla_ms=sla, policy=policy, status=status, disposition=disposition, model=model,
                           sla_met=met)


def test_story_counts_on_phone_and_late_answers_as_what_they_are():
    records = [
        _record(150, "modipick", model="fast", met=True),
        _record(150, "modipick", model="accurate", met=True),
        _record(150, "modipick", disposition="run_on_device"),        # the designed fallback
        _record(150, "modipick", model="accurate", met=False),        # served, back after the SLA
        _record(150, "static_greedy", status="DEADLINE_EXCEEDED", disposition=""),  # the phone gave up
        _record(150, "static_greedy", status="UNAVAILABLE", disposition=""),        # a real failure
        _record(100, "static_greedy", disposition="run_on_device"),
    ]
    rows = story_rows(records, {"fast": 50.0, "accurate": 80.0})
    assert [(r.sla_ms, r.policy) for r in rows] == [(100, "static_greedy"), (150, "modipick"), (150, "static_greedy")]
    mp = rows[1]
    assert (mp.in_time, mp.late, mp.on_phone, sum(mp.errors.values())) == (2, 1, 1, 0)
    assert mp.effective_accuracy == pytest.approx((50 + 80) / 4)
    greedy = rows[2]
    assert (greedy.late, dict(greedy.errors)) == (1, {"UNAVAILABLE": 1})

    table = story_table(rows)
    head = table.splitlines()[0].split()
    assert head[:2] == ["SLA", "policy"] and "on" in head and "late" in head and "accuracy" in head
    assert "DEADLINE_EXCEEDED" not in table and "nan" not in table
    assert "1 x UNAVAILABLE" in table  # real failures are named, apart from the story's cells
    assert "100 %" in table.splitlines()[1]  # the 100 ms row: every answer from the phone
    markdown = story_markdown(rows)
    assert markdown.startswith("# modipick demo") and "| 150 ms | modipick | 50 % | 25 % | 25 % | 32.5 |" in markdown
    for word in ("in time", "late", "on phone", "accuracy", "not an error"):
        assert word in LEGEND


def test_slas_climb_from_fast_models_to_the_accurate_one_and_stay_in_order():
    pool = [Profile("m025", 7, 2, 49.7), Profile("m050", 10, 2, 63.2), Profile("m100", 25, 20, 71.0),
            Profile("incv3", 70, 30, 77.9)]
    tight, fits, roomy = place_slas(pool, network_ms=43)
    assert tight == 130 and fits == 160 and roomy == 260
    slow_middle = [Profile("a", 5, 1, 50), Profile("b", 90, 5, 60), Profile("c", 60, 5, 70)]
    slas = place_slas(slow_middle, network_ms=40)
    assert slas == sorted(slas) and len(set(slas)) == 3


def test_make_demo_needs_no_npm_but_make_test_does(tmp_path):
    if shutil.which("make") is None:
        pytest.fail("make is missing (apt-get install make)")
    venv = tmp_path / "venv"
    env = {**os.environ, "PATH": "/usr/bin:/bin"}

    def plan(target: str) -> str:
        done = subprocess.run(["make", "-n", "-C", str(ROOT), target, f"VENV={venv}"], capture_output=True,
                              text=True, env=env, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "npm install" not in plan("demo") and "command -v npm" not in plan("demo")
    assert "modipick demo" in plan("demo")
    assert "npm install" in plan("test")


@pytest.fixture(scope="module")
def small_arch_pool() -> Path:
    """The live-compare test's two imagenet-arch models at 128 px (cached across runs)."""
    return build_cached("imagenet-arch", zoo_cache_root() / "imagenet-arch-mb025-incv3-128",
                        "--models", "mobilenet-025,inception-v3", "--input-size", "128")


@pytest.mark.slow
@pytest.mark.tf
def test_demo_tells_the_story_on_a_shipped_trace_and_cleans_up(redis_url, small_arch_pool, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODIPICK_")}
    out = tmp_path / "demo"
    done = subprocess.run([*MODIPICK, "demo", "--redis-url", redis_url, "--model-base", str(small_arch_pool),
                           "--requests", "8", "--rate", "10", "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:2] == ["SLA", "policy"])
    rows = [line for line in lines[start + 1:start + 10]]
    policies = [next(p for p in ("static_greedy", "modipick", "risk_aware") if p in row) for row in rows]
    assert policies == ["static_greedy", "modipick", "risk_aware"] * 3
    slas = [float(m.group(1)) for row in rows if (m := re.match(r"\s*(\d+) ms", row))]
    assert len(slas) == 3 and slas == sorted(slas)
    for row in rows:
        assert len(re.findall(r"\d+ %", row)) == 3, row  # in time, late, on phone: all readable shares
        assert "nan" not in row and "DEADLINE" not in row
    assert "TMobile-LTE-short" in done.stdout and "on phone" in done.stdout
    assert "suite stopped" in done.stdout and "after set-up" in done.stdout

    report = (out / "report.md").read_text()
    assert report.startswith("# modipick demo") and "| static_greedy |" in report and "| risk_aware |" in report
    assert (out / "latency_accuracy_vs_sla.png").stat().st_size > 0 and "![" in report
    for name in ("selector", "executor", "profiler"):
        target = next(line.split()[1] for line in lines if line.strip().startswith(name))
        assert not serving(target), f"{name} still serving after the demo"


def test_demo_names_a_bad_flag_or_trace_in_one_line(capsys):
    from modipick.cli.demo import main

    with pytest.raises(SystemExit) as exit_:
        main(["--slas", "100,abc"], environ={})
    assert exit_.value.code == 2
    assert "--slas" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main([], environ={"MODIPICK_REQUESTS": "many"})
    assert exit_.value.code == 2 and "MODIPICK_REQUESTS" in capsys.readouterr().err
    assert main(["--network", "no_such_set/trace"], environ={}) == 2
    assert "no_such_set/trace" in capsys.readouterr().err
