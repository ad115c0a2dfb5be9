"""Summaries, comparison tables and the records CSV, on hand-made records."""

from __future__ import annotations

import pytest

from modipick.loadgen.records import RequestRecord, read_records, write_records
from modipick.loadgen.summary import comparison_tables, summarize, summarize_run


def _record(i: int, **fields) -> RequestRecord:
    base = dict(run="r", policy="modipick", network="wifi", sla_ms=100.0, index=i, request_id=f"id{i}",
                intended_s=i * 0.01, lag_ms=0.1 * i, upload_ms=10.0, return_ms=1.0, e2e_ms=50.0)
    base.update(fields)
    return RequestRecord(**base)


RECORDS = [
    _record(0, disposition="served", model="m1", e2e_ms=50.0, sla_met=True, label=3, predicted=3, correct=True),
    _record(1, disposition="served", model="m2", e2e_ms=150.0, sla_met=False, label=4, predicted=4, correct=True),
    _record(2, disposition="run_on_device", model="m1", e2e_ms=20.0),
    _record(3, status="DEADLINE_EXCEEDED", error="late", e2e_ms=100.0),
]


def test_summary_metrics():
    s = summarize_run(RECORDS, {"m1": 90.0, "m2": 80.0})
    assert (s.requests, s.served, s.on_device, s.failed) == (4, 2, 1, 1)
    assert s.attainment_pct == 25.0
    assert s.effective_accuracy_pct == 25.0       # only the met and correct request counts
    assert s.measured_accuracy_pct == 100.0       # both served predictions were right
    assert s.declared_accuracy_pct == 85.0
    assert s.effective_declared_pct == 22.5       # 90 for the one met request, 0 for the rest
    assert s.model_mix == {"(failed)": 0.25, "(on-device)": 0.25, "m1": 0.25, "m2": 0.25}
    assert s.e2e_p50_ms == pytest.approx(75.0) and s.lag_max_ms == pytest.approx(0.3)


def test_summary_without_labels_or_declared_accuracies():
    plain = [_record(i, disposition="served", model="m1", sla_met=True) for i in range(4)]
    s = summarize_run(plain)
    assert s.attainment_pct == 100.0
    assert s.effective_accuracy_pct is None and s.measured_accuracy_pct is None and s.declared_accuracy_pct is None


def test_comparison_table_puts_policies_side_by_side():
    greedy = [_record(i, run="g", policy="static_greedy", disposition="served", model="m2", sla_met=False)
              for i in range(2)]
    table = comparison_tables(summarize(RECORDS + greedy))
    header = table.splitlines()[0]
    assert "network wifi, SLA 100 ms" in header and "modipick" in header and "static_greedy" in header
    attainment = next(line for line in table.splitlines() if line.startswith("SLA attainment"))
    assert attainment.split()[-2:] == ["25.0", "0.0"]


def test_runs_that_upload_differently_are_compared_as_series():
    adaptive = [_record(i, run="a", upload="adaptive", disposition="served", model="m1", sla_met=True)
                for i in range(2)]
    fixed = [_record(i, run="f", upload="fixed:224", disposition="served", model="m2", sla_met=False)
             for i in range(2)]
    summaries = summarize(adaptive + fixed)
    assert [s.series for s in summaries] == ["modipick upload=adaptive", "modipick upload=fixed:224"]
    assert summarize_run(RECORDS).series == "modipick"  # no upload chosen: the policy alone
    header = comparison_tables(summaries).splitlines()[0]
    assert "modipick upload=adaptive" in header and "modipick upload=fixed:224" in header


def test_records_csv_round_trip(tmp_path):
    path = tmp_path / "records.csv"
    assert write_records(path, RECORDS) == 4
    back = read_records(path)
    assert [r.status for r in back] == [r.status for r in RECORDS]
    assert [r.correct for r in back] == [True, True, None, None]
    assert back[2].label is None and back[0].label == 3 and back[1].sla_met is False
    assert back[0].e2e_ms == pytest.approx(50.0)
    assert write_records(path, [_record(0, upload="fixed:96")]) == 1
    assert read_records(path)[0].upload == "fixed:96"
