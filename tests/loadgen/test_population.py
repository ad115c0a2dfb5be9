"""Client populations: ids and classes, Zipf activity, each client's own place in its trace, the
per-client report, and a short run of 10^3 clients against a Selector on loopback."""

from __future__ import annotations

import collections
import csv
import math

import numpy as np
import pytest

from modipick.loadgen.cli import main
from modipick.loadgen.client_summary import client_distribution
from modipick.loadgen.population import Population, class_name, zipf_weights
from modipick.loadgen.records import RequestRecord, read_records
from modipick.loadgen.traces import NetworkOptions, open_network
from modipick.loadgen.traces.legs import ParametricLegs, Sizes
from modipick.loadgen.traces.profiles import NetworkProfile


def parametric(name: str, mean_ms: float = 20.0) -> ParametricLegs:
    return ParametricLegs(NetworkProfile(name, mean_ms, mean_ms / 4), Sizes(), seed=1)


def build(n: int = 300, seed: int = 3, s: float = 1.0, networks=None) -> Population:
    return Population.build(n, networks or [parametric("wifi"), parametric("lte")], zipf_s=s,
                            rng=np.random.default_rng(seed))


def test_the_same_seed_gives_the_same_population_and_schedule():
    a, b = build(seed=11), build(seed=11)
    assert [(c.client_id(), c.offset_s, c.index_offset, c.weight) for c in a.clients] == \
           [(c.client_id(), c.offset_s, c.index_offset, c.weight) for c in b.clients]
    sa, sb = a.schedule(2_000, np.random.default_rng(5)), b.schedule(2_000, np.random.default_rng(5))
    assert np.array_equal(sa.owner, sb.owner) and np.array_equal(sa.seq, sb.seq)
    other = build(seed=12)
    assert [c.index_offset for c in other.clients] != [c.index_offset for c in a.clients]


def test_ids_name_the_network_class_before_the_slash_and_classes_are_balanced():
    networks = [parametric("campus wifi/5GHz"), parametric("lte")]
    population = build(n=301, networks=networks)
    ids = [c.client_id() for c in population.clients]
    assert len(set(ids)) == 301
    classes = [i.partition("/")[0] for i in ids]
    assert set(classes) == {"campus-wifi-5GHz", "lte"} == {class_name(n) for n in networks}
    assert sorted(classes.count(k) for k in set(classes)) == [150, 151]
    for client in population.clients:  # a client's class is its network's
        assert client.network_class == class_name(client.network)
    assert population.clients[7].client_id("run1") == f"{population.clients[7].network_class}.run1/000007"


def test_zipf_activity_follows_one_over_rank_to_the_s():
    n, requests = 1_000, 200_000
    for s in (0.0, 0.8, 1.2):
        population = build(n=n, s=s, seed=4)
        schedule = population.schedule(requests, np.random.default_rng(9))
        counts = np.sort(np.bincount(schedule.owner, minlength=n))[::-1].astype(float)
        harmonic = sum(k ** -s for k in range(1, n + 1))
        # the busiest client's share, within sampling noise (~5 standard deviations)
        expected_top = requests / harmonic
        assert abs(counts[0] - expected_top) < 5 * math.sqrt(expected_top) + 0.02 * expected_top, s
        if s == 0.0:
            assert counts[0] < 2 * requests / n  # alike: none far above the mean of 200
        else:  # the log-log slope of count against rank over the top 100 ranks is -s
            ranks = np.arange(1, 101)
            slope = np.polyfit(np.log(ranks), np.log(counts[:100]), 1)[0]
            assert abs(slope + s) < 0.1, (s, slope)
    # the busiest client is not simply the first id: activity is shuffled over the population
    busiest = {int(np.argmax([c.weight for c in build(seed=seed).clients])) for seed in range(5)}
    assert len(busiest) > 1
    with pytest.raises(ValueError, match="Zipf"):
        zipf_weights(10, -0.5)


def test_each_client_reads_its_own_segment_of_a_per_request_trace(write):
    rows = "".join(f"{10 + i},{1000 + i}\n" for i in range(500))
    trace = open_network(str(write("phone.csv", "upload_ms,return_ms\n" + rows)), NetworkOptions())
    population = Population.build(40, [trace], zipf_s=0.5, rng=np.random.default_rng(2))
    schedule = population.schedule(3_000, np.random.default_rng(3))
    offsets = [c.index_offset for c in population.clients]
    assert all(0 <= o < 500 for o in offsets) and len(set(offsets)) > 30
    for number in (0, 13, 39):
        mine = [i for i in range(3_000) if schedule.owner[i] == number]
        legs = [trace.upload_ms(schedule.legs_at(i, 0.0)[0], 0.0) for i in mine]
        start = population.clients[number].index_offset
        assert legs == [10.0 + (start + k) % 500 for k in range(len(mine))]  # consecutive rows, wrapping


def test_each_client_starts_at_its_own_time_in_a_link_trace(write):
    lines = "\n".join(str(t) for t in range(0, 20_000, 4))  # one packet every 4 ms for 20 s
    trace = open_network(str(write("link.up", lines + "\n")), NetworkOptions())
    population = Population.build(50, [trace], zipf_s=1.0, rng=np.random.default_rng(6))
    offsets = [c.offset_s for c in population.clients]
    assert all(0.0 <= o < 20.0 for o in offsets) and len(set(offsets)) == 50
    schedule = population.schedule(10, np.random.default_rng(1))
    _, shift = schedule.legs_at(0, 1.5)
    assert shift == population.clients[int(schedule.owner[0])].offset_s + 1.5


def record(client: str, i: int, met: bool, correct: bool | None = True, source: str = "") -> RequestRecord:
    return RequestRecord(run="r", policy="p", network="lte", sla_ms=100.0, index=i, request_id=str(i),
                         intended_s=0.0, lag_ms=0.0, upload_ms=1.0, return_ms=1.0, disposition="served",
                         sla_met=met, label=1, predicted=1 if correct else 0, correct=correct,
                         client_id=client, return_leg_source=source)


def test_the_p5_and_p50_clients_and_the_share_of_own_models():
    records, i = [], 0
    for k in range(20):  # client k meets k of its 20 requests (0 %, 5 %, ... 95 %)
        for j in range(20):
            records.append(record(f"lte/{k:03d}", i, met=j < k, source="client" if j % 2 else "class"))
            i += 1
    records += [record("lte/rare", i, met=False)]  # too few requests to count
    dist = client_distribution(records, min_requests=5)
    assert (dist.clients, dist.qualified, dist.requests_max) == (21, 20, 20)
    assert dist.attainment_p5_pct == 0.0 and dist.attainment_p50_pct == 45.0
    assert dist.effective_accuracy_p50_pct == 45.0
    assert dist.own_model_pct == pytest.approx(100.0 * 200 / 401)
    unsaid = client_distribution([record("a/1", 0, True), record("a/2", 1, True)])
    assert unsaid.own_model_pct is None and unsaid.qualified == 0 and unsaid.attainment_p5_pct is None
    assert client_distribution([record("a/1", 0, True)]) is None  # one client: no distribution


@pytest.mark.parametrize("argv, message", [
    (["--clients", "10", "--mode", "link", "--network", "lte"], "--clients: a client population needs"),
    (["--clients", "10", "--client-id", "x/1", "--mode", "direct"], "--client-id: a population"),
    (["--clients", "0", "--mode", "direct"], "argument --clients: must be > 0"),
    (["--clients", "5", "--zipf-s", "-1", "--mode", "direct"], "argument --zipf-s: must be >= 0"),
])
def test_bad_population_options_exit_2_naming_the_flag(argv, message, capsys, trivial):
    try:
        code = main(["run", "--target", trivial.address, "--progress", "none", *argv])
    except SystemExit as exited:  # argparse's own checks
        code = exited.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_population_of_a_thousand_clients_against_a_selector(trivial, tmp_path, capsys):
    out = tmp_path / "report"
    code = main(["run", "--target", trivial.address, "--mode", "realtime", "--clients", "1000",
                 "--zipf-s", "0.9", "--network", "param:4,1", "--network", "cv:6,0.5", "--sla", "1000",
                 "--arrivals", "constant", "--rate", "250", "--count", "1000", "--seed", "8",
                 "--progress", "none", "--report", str(out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    records = read_records(out / "records.csv")
    assert len(records) == 1000
    sent = collections.Counter(r.client_id for r in records)
    assert 300 < len(sent) <= 1000  # Zipf: many clients, a few busy ones
    # the Selector saw requests under their clients' ids (a busy machine may spend a request's SLA
    # before it is sent), and each served reply was reported by its client
    seen = trivial.selector.clients
    assert sum(seen.values()) >= sum(r.served for r in records) > 500
    assert all(seen[i] <= sent[i] for i in seen) and set(seen) <= set(sent)
    assert trivial.selector.reporters == collections.Counter(r.client_id for r in records if r.served)
    for r in records:  # a client's requests cross its own class's network; its class is that network's
        assert r.client_id.partition("/")[0].rpartition(".")[0] == class_name_of(r.network)
    assert {r.network for r in records} == {"param:4,1", "cv50%"}
    assert "clients" in printed.out and "attain % p5" in printed.out
    assert "## Clients" in (out / "report.md").read_text()
    with open(out / "summary.csv", newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    assert int(row["client_clients"]) == len(sent)
    assert float(row["client_attainment_p5_pct"]) <= float(row["client_attainment_p50_pct"])
    assert row["client_own_model_pct"] == ""  # the stand-in Selector does not say whose model decided


def class_name_of(network_name: str) -> str:
    return class_name(parametric(network_name))
