"""A client population against the live suite's real Selector (risk_aware, which learns return legs
per client and per class): every client's requests and outcome reports go under its own id."""

from __future__ import annotations

import collections

import pytest

from modipick.loadgen.cli import main as loadgen_main
from modipick.loadgen.records import read_records

pytestmark = [pytest.mark.slow, pytest.mark.tf]


def test_three_hundred_clients_against_the_live_selector(live_suite, tmp_path, capsys):
    records_path = tmp_path / "records.csv"
    code = loadgen_main(["run", "--target", live_suite.selector_target, "--mode", "realtime",
                         "--network", "param:6,2", "--network", "param:15,5", "--clients", "300",
                         "--zipf-s", "1.0", "--compare", "risk_aware", "--sla", "400", "--arrivals", "constant",
                         "--rate", "80", "--count", "400", "--seed", "3", "--progress", "none",
                         "--records", str(records_path)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    records = read_records(records_path)
    assert len(records) == 400
    served = [r for r in records if r.served]
    assert len(served) >= 0.9 * len(records), collections.Counter(r.status for r in records)
    by_client = collections.Counter(r.client_id for r in records)
    assert 100 < len(by_client) <= 300 and max(by_client.values()) >= 10  # Zipf: a few busy clients
    classes = {cid.partition("/")[0].rpartition(".")[0] for cid in by_client}
    assert classes == {"param:6-2", "param:15-5"}
    assert sum(r.correct for r in served if r.correct is not None) >= 0.8 * len(served)  # digits, labelled
    assert "attain % p5" in printed.out and "own model %" in printed.out
