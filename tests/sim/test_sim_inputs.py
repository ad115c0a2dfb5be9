"""Bad input -> exit code 2 and ONE line on stderr naming the file/row/value, no traceback."""

from __future__ import annotations

import pytest

from sim_support import GOOD_MODELS

BAD_MODEL_FILES = [
    # (file text, words the one-line message must contain)
    ("model,top1_accuracy_pct,mean_ms\nA,50,5\n", ["missing column", "std_ms"]),
    ("model,top1_accuracy_pct,mean_ms,std_ms\nA,50,5,0.1\nB,60,-3,0.1\n", ["line 3", "mean_ms", "'-3'"]),
    ("model,top1_accuracy_pct,mean_ms,std_ms\nA,50,5,nan\n", ["line 2", "std_ms", "'nan'"]),
    ("model,top1_accuracy_pct,mean_ms,std_ms\nA,50,5,0.1\nA,60,6,0.1\n", ["line 3", "duplicate", "'A'"]),
    ("model,top1_accuracy_pct,mean_ms,std_ms\n", ["no model rows"]),
    ("model,top1_accuracy_pct,mean_ms,std_ms\nA,fifty,5,0.1\n", ["line 2", "top1_accuracy_pct", "'fifty'"]),
    ("model,top1_accuracy_pct,mean_ms,std_ms\nA,150,5,0.1\n", ["line 2", "top1_accuracy_pct", "'150'"]),
]


def assert_one_line_error(result, *words: str) -> None:
    assert result.code == 2
    assert len(result.err_lines) == 1, result.err
    assert "Traceback" not in result.err
    for word in words:
        assert word in result.err_lines[0], (word, result.err)


@pytest.mark.parametrize("text,words", BAD_MODEL_FILES)
def test_bad_model_csv_names_file_row_and_value(run_sim, write_csv, tmp_path, text, words):
    path = write_csv("models.csv", text)
    result = run_sim("run", "--models", str(path), "--sla", "150", "--requests", "10", "--out", str(tmp_path / "o"))
    assert_one_line_error(result, str(path), *words)
    assert not (tmp_path / "o").exists()


def test_unknown_model_file(run_sim, tmp_path):
    missing = tmp_path / "nope.csv"
    result = run_sim("run", "--models", str(missing), "--out", str(tmp_path / "o"))
    assert_one_line_error(result, str(missing), "no such file")


@pytest.mark.parametrize("sla,value", [("0", "0"), ("100,-5", "-5"), ("abc", "abc")])
def test_non_positive_or_garbled_sla(run_sim, write_csv, tmp_path, sla, value):
    path = write_csv("models.csv", GOOD_MODELS)
    result = run_sim("run", "--models", str(path), "--sla", sla, "--out", str(tmp_path / "o"))
    assert_one_line_error(result, "--sla", value)


@pytest.mark.parametrize("argv,words", [
    (["--policies", "modipick,telepathy"], ["unknown policy", "'telepathy'"]),
    (["--policies", "modipick(treshold_ms=5)"], ["unknown parameter", "'treshold_ms'"]),
    (["--policies", "modipick(threshold_ms=-1)"], ["threshold_ms"]),
    (["--network", "moon_base"], ["unknown profile", "'moon_base'"]),
    (["--network", "dist:weibull:50:0.5"], ["unknown distribution", "'weibull'"]),
    (["--network", "dist:normal:50:-1"], ["CV", "'-1'"]),
    (["--return-leg", "sideways"], ["--return-leg", "sideways"]),
    (["--requests", "0"], ["--requests", "'0'"]),
    (["--drift", "ghost:3:0:10"], ["--drift", "'ghost'"]),
    (["--cold", "ghost"], ["--cold", "'ghost'"]),
    (["--networks-csv", "/nonexistent/networks.csv"], ["/nonexistent/networks.csv", "no such file"]),
])
def test_unknown_policy_profile_and_flags(run_sim, write_csv, tmp_path, argv, words):
    path = write_csv("models.csv", GOOD_MODELS)
    result = run_sim("run", "--models", str(path), "--sla", "150", "--requests", "10",
                     "--out", str(tmp_path / "o"), *argv)
    assert_one_line_error(result, *words)


def test_bad_trace_file_names_line_and_value(run_sim, write_csv, tmp_path):
    models = write_csv("models.csv", GOOD_MODELS)
    trace = write_csv("trace.csv", "network_ms\n40\n55\n-2\n")
    result = run_sim("run", "--models", str(models), "--network", f"trace:{trace}", "--sla", "150",
                     "--requests", "10", "--out", str(tmp_path / "o"))
    assert_one_line_error(result, str(trace), "line 4", "'-2'")


def test_bad_networks_csv_row(run_sim, write_csv, tmp_path):
    models = write_csv("models.csv", GOOD_MODELS)
    nets = write_csv("nets.csv", "network,mean_ms,std_ms\nwifi,50,10\nlte,x,5\n")
    result = run_sim("run", "--models", str(models), "--networks-csv", str(nets), "--network", "lte",
                     "--sla", "150", "--requests", "10", "--out", str(tmp_path / "o"))
    assert_one_line_error(result, str(nets), "line 3", "'x'")


def test_missing_subcommand_and_scenario_name(run_sim, tmp_path):
    assert_one_line_error(run_sim(), "required")
    assert_one_line_error(run_sim("scenarios", "--only", "atlantis", "--out", str(tmp_path)), "'atlantis'")


def test_help_exits_zero(run_sim):
    result = run_sim("run", "--help")
    assert result.code == 0
    assert "--return-leg" in result.out
