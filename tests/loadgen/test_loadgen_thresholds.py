"""k6-style pass/fail: `--threshold` bars and `--max-error-rate` decide the exit code (99 when one
fails), failures are printed by reason, and `--summary-json` writes the runs and verdicts."""

from __future__ import annotations

import argparse
import json

import pytest

from modipick.loadgen.cli import main
from modipick.loadgen.thresholds import EXIT_THRESHOLDS_FAILED, Threshold, parse_threshold


def test_threshold_syntax_and_its_errors():
    assert parse_threshold("attainment>=0.9") == Threshold("attainment", ">=", 0.9)
    assert parse_threshold(" e2e_p95_ms < 250 ").passes(249.9)
    assert not parse_threshold("error_rate<=0.01").passes(0.02)
    assert not parse_threshold("attainment>=0.5").passes(None)  # nothing measured never passes
    for bad, fragment in [("attainment=0.9", "METRIC<OP>VALUE"), ("speed>=1", "unknown metric 'speed'"),
                          ("attainment>=0.9.1", "not a number")]:
        with pytest.raises(argparse.ArgumentTypeError, match=fragment):
            parse_threshold(bad)


def _run(address: str, sla: str, *extra: str) -> list[str]:
    return ["run", "--target", address, "--mode", "direct", "--sla", sla, "--count", "12", "--rate", "200",
            "--compare", "static_greedy,modipick", "--progress", "none", "--seed", "3", *extra]


def test_passing_bars_exit_0_and_the_summary_says_so(trivial_factory, tmp_path, capsys):
    trivial = trivial_factory()
    summary = tmp_path / "summary.json"
    code = main(_run(trivial.address, "2000", "--threshold", "attainment>=0.9", "--max-error-rate", "0.01",
                     "--summary-json", str(summary)), environ={})
    out = capsys.readouterr().out
    assert code == 0, out
    assert "failures by reason: none" in out and "thresholds: 4 of 4 passed" in out
    doc = json.loads(summary.read_text())
    assert doc["passed"] is True and len(doc["runs"]) == 2 and len(doc["thresholds"]) == 4
    assert doc["runs"][0]["metrics"]["attainment"] == 1.0 and doc["runs"][0]["failures_by_reason"] == {}


def test_failing_bars_exit_99_and_failures_are_printed_by_reason(trivial_factory, tmp_path, capsys):
    trivial = trivial_factory(execute=True)
    summary = tmp_path / "summary.json"  # a 10 us SLA is the call's deadline: no call can make it
    code = main(_run(trivial.address, "0.01", "--threshold", "attainment>=0.9", "--threshold", "e2e_p99_ms<100000",
                     "--max-error-rate", "0.01", "--summary-json", str(summary)), environ={})
    out = capsys.readouterr().out
    assert code == EXIT_THRESHOLDS_FAILED == 99
    doc = json.loads(summary.read_text())
    assert doc["passed"] is False
    verdicts = {(v["run"].split()[0], v["threshold"]): v["passed"] for v in doc["thresholds"]}
    assert verdicts[("modipick", "attainment>=0.9")] is False
    assert verdicts[("modipick", "e2e_p99_ms<100000")] is True
    assert "FAIL  attainment>=0.9" in out and "pass  e2e_p99_ms<100000" in out
    assert verdicts[("modipick", "error_rate<=0.01")] is False
    for run in doc["runs"]:
        # at a 10 us deadline almost every one of the 12 calls expires (one may end otherwise, no failure)
        failed = run["failures_by_reason"]
        assert set(failed) == {"DEADLINE_EXCEEDED"} and 10 <= failed["DEADLINE_EXCEEDED"] <= 12, failed
        assert f"{run['run']}: DEADLINE_EXCEEDED {failed['DEADLINE_EXCEEDED']}" in out


def test_a_bad_threshold_or_environment_value_exits_2_in_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--threshold", "attain>=1"], environ={})
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "unknown metric 'attain'" in err and "\n" not in err
    with pytest.raises(SystemExit) as exit_:
        main(["run"], environ={"MODIPICK_RATE": "fast"})
    assert exit_.value.code == 2 and "MODIPICK_RATE='fast'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--max-error-rate", "2"], environ={})
    assert exit_.value.code == 2 and "[0, 1]" in capsys.readouterr().err
