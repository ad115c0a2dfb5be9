"""`modipick loadgen` end to end: report folders, side-by-side comparisons, and one-line errors."""

from __future__ import annotations

import csv

import pytest

from modipick.cli import main as modipick_main
from modipick.loadgen.cli import main
from modipick.loadgen.records import read_records


def test_report_folder_with_compare_sla_and_cv_sweep(trivial_factory, tmp_path, capsys):
    trivial = trivial_factory(execute=True)  # models take their mean time, so the choice shows in e2e
    out = tmp_path / "report"
    code = main(["run", "--target", trivial.address, "--profiler", trivial.address, "--mode", "realtime",
                 "--cv-sweep", "0,0.8", "--cv-mean-ms", "10", "--sla", "40,90",
                 "--compare", "static_greedy,modipick", "--count", "15", "--rate", "100", "--seed", "5",
                 "--response-bytes", "330000", "--progress", "plain", "--report", str(out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    for name in ("report.md", "records.csv", "summary.csv", "latency_accuracy_vs_sla_cv0_.png",
                 "models_vs_sla_cv80_.png", "vs_network_cv.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    report = (out / "report.md").read_text()
    assert "## Policies side by side" in report and "![" in report and "| cv80% |" in report
    assert "network cv0%, SLA 40 ms" in printed.out and "static_greedy" in printed.out

    records = read_records(out / "records.csv")
    assert len(records) == 2 * 2 * 2 * 15
    # the same trace, arrivals and inputs for both policies of a cell
    for network in ("cv0%", "cv80%"):
        for sla in (40.0, 90.0):
            cell = {p: [r for r in records if r.network == network and r.sla_ms == sla and r.policy == p]
                    for p in ("static_greedy", "modipick")}
            a, b = cell["static_greedy"], cell["modipick"]
            assert [(r.intended_s, r.upload_ms, r.label) for r in a] == [(r.intended_s, r.upload_ms, r.label)
                                                                         for r in b]
    # with a 10 ms network both ways, static greedy's 40 ms model misses SLA 40; the dynamic policy adapts
    with open(out / "summary.csv", newline="") as handle:
        rows = {(r["policy"], r["network"], float(r["sla_ms"])): r for r in csv.DictReader(handle)}
    assert float(rows[("static_greedy", "cv0%", 40.0)]["attainment_pct"]) == 0.0
    # (15 requests: on a busy machine a stall or two of the load generator itself costs 7 points each)
    assert float(rows[("modipick", "cv0%", 40.0)]["attainment_pct"]) >= 60.0
    assert float(rows[("modipick", "cv0%", 40.0)]["declared_accuracy_pct"]) < 98.5

    again = tmp_path / "again"
    assert main(["report", str(out / "records.csv"), "--out", str(again)]) == 0
    assert (again / "report.md").is_file() and (again / "vs_network_cv.png").is_file()


def test_records_csv_and_trace_arrivals_through_the_modipick_command(trivial, write, tmp_path, capsys):
    trace = write("phone.csv", "send_time_s,upload_ms,return_ms\n100.0,4,1\n100.02,6,2\n100.05,3,1\n")
    records = tmp_path / "records.csv"
    code = modipick_main(["loadgen", "run", "--target", trivial.address, "--network", str(trace),
                          "--arrivals", "trace", "--count", "6", "--sla", "200", "--records", str(records),
                          "--progress", "none"])
    assert code == 0, capsys.readouterr().err
    got = read_records(records)
    assert [round(r.intended_s, 3) for r in got] == [0.0, 0.02, 0.05, 0.075, 0.095, 0.125]
    assert [r.upload_ms for r in got] == [4.0, 6.0, 3.0] * 2 and all(r.sla_met for r in got)


def test_stats_of_a_trace(write, tmp_path, capsys):
    write("s.up", "".join(f"{t}\n" for t in range(1, 101)))
    write("s.down", "".join(f"{t}\n" for t in range(2, 201, 2)))
    assert main(["stats", "--request-bytes", "15000", str(tmp_path / "s"), "campus_wifi"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("s "))
    assert line.split()[1] == "9.5"  # 10 packets at one per ms, starts spread within a millisecond
    assert "up 12.00 / down 6.00 Mbps" in out and "campus_wifi" in out


@pytest.mark.parametrize(("argv", "expected"), [
    (["stats", "{bad}"], "{bad}:3: expected one integer millisecond timestamp per line, got 'x'"),
    (["stats", "nowhere.trace"], "nowhere.trace: no such trace file"),
    (["run", "--network", "lte", "--compare", "greedy"], "--compare: unknown policy 'greedy'"),
    (["run", "--sla", "fast"], "argument --sla: expected comma-separated numbers, got 'fast'"),
    (["run", "--mode", "link", "--network", "lte"], "lte: link mode needs a link trace"),
    (["stats", "cv:50,x"], "cv:50,x: not a number"),
])
def test_bad_input_exits_2_with_one_line(write, capsys, argv, expected, trivial):
    bad = write("bad.up", "1\n2\nx\n")
    argv = [a.replace("{bad}", str(bad)) for a in argv]
    expected = expected.replace("{bad}", str(bad))
    if argv[0] == "run":
        argv += ["--target", trivial.address, "--count", "2", "--progress", "none"]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and expected in err, err
