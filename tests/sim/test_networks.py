"""Network models: the authors' resampled normal, gamma, per-request traces, bandwidth traces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modipick.sim.errors import SimInputError
from modipick.sim.networks import GammaNetwork, NormalNetwork, TraceNetwork, draw_legs, parse_network
from modipick.sim.traces import transfer_times


def rng(seed=1):
    return np.random.default_rng(seed)


def test_named_profiles_come_from_the_packaged_networks_csv():
    wifi = parse_network("campus_wifi")
    assert isinstance(wifi, NormalNetwork) and (wifi.mean_ms, wifi.std_ms) == (57.87, 30.79)
    assert isinstance(parse_network("campus_wifi:gamma"), GammaNetwork)
    perfect = parse_network("perfect").draw(100, rng())
    assert (perfect == 50.0).all()


def test_normal_is_resampled_while_not_positive():
    x = NormalNetwork(10.0, 30.0).draw(50_000, rng())
    assert (x > 0).all()
    assert x.mean() > 10.0 + 10  # truncation at 0 lifts the mean well above 10


@pytest.mark.parametrize("cv", ["0.5", "50%"])
def test_distribution_spec_mean_and_cv(cv):
    g = parse_network(f"dist:gamma:80:{cv}")
    x = g.draw(200_000, rng())
    assert x.mean() == pytest.approx(80, rel=0.01)
    assert x.std() / x.mean() == pytest.approx(0.5, rel=0.02)


def test_trace_replays_in_order_and_pairs_columns(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("upload_ms,return_ms\n10,1\n20,2\n30,3\n", encoding="utf-8")
    net = parse_network(f"trace:{path}")
    assert isinstance(net, TraceNetwork)
    up, back = draw_legs(net, "paired", 7, rng(), rng(2))
    assert np.array_equal(back * 10, up)
    start = list(up).index(10.0)
    assert list(np.roll(up, -start)[:3]) == [10.0, 20.0, 30.0]
    headerless = tmp_path / "h.csv"
    headerless.write_text("5\n6\n", encoding="utf-8")
    assert sorted(parse_network(f"trace:{headerless}").draw(2, rng())) == [5.0, 6.0]
    with pytest.raises(SimInputError, match="paired"):
        draw_legs(NormalNetwork(50, 5), "paired", 3, rng(), rng())


def test_mahimahi_transfer_time(tmp_path):
    # one 1500-byte opportunity every ms: 3000 bytes = 2 packets -> done at the 2nd opportunity
    path = tmp_path / "link.up"
    path.write_text("\n".join(str(t) for t in range(1, 1001)) + "\n", encoding="utf-8")
    times = transfer_times(path, 3000, step_ms=100)
    assert len(times) == 10
    assert times[0] == pytest.approx(2.0)  # start 0: opportunities at 1 and 2 ms
    assert times[1] == pytest.approx(1.0)  # start 100: opportunities at 100 and 101 ms


def test_sbu_and_pensieve_bandwidth_transfer_time(tmp_path):
    sbu = tmp_path / "w.csv"  # 1 MB/s for 1 s, then 0.5 MB/s
    sbu.write_text("1,1000000\n2,500000\n", encoding="utf-8")
    t = transfer_times(sbu, 330_000, step_ms=100)
    assert t[0] == pytest.approx(330.0)              # all at 1000 B/ms
    assert t[8] == pytest.approx(200 + 130_000 / 500)  # 200 ms at 1000 B/ms, rest at 500 B/ms
    pensieve = tmp_path / "p"
    pensieve.write_text("0.0\t8.0\n1.0\t8.0\n", encoding="utf-8")  # 8 Mbps = 1000 B/ms
    assert transfer_times(pensieve, 330_000)[0] == pytest.approx(330.0)


def test_bwtrace_spec_globs_files(tmp_path):
    for i in (1, 2):
        (tmp_path / f"{i}_wifi.csv").write_text("1,1000000\n2,1000000\n", encoding="utf-8")
    (tmp_path / "SOURCE.md").write_text("# not a trace\n", encoding="utf-8")
    net = parse_network(f"bwtrace:{tmp_path}/*")
    assert net.draw(5, rng()) == pytest.approx([330.0] * 5)
    with pytest.raises(SimInputError, match="no file matches"):
        parse_network(f"bwtrace:{tmp_path}/none*")


def test_shipped_lte_trace_matches_its_source_statistics():
    from modipick.sim.paths import resolve, search_path

    up = resolve("lte_mahimahi_short/TMobile-LTE-short.up", search_path(environ={}))
    assert up.is_file(), up
    times = transfer_times(up, 330_000)
    # the origin's SOURCE.md for TMobile-LTE-short.up at 330 KB: mean 339.6 ms, p50 231 ms
    assert times.mean() == pytest.approx(339.6, abs=0.1)
    assert np.percentile(times, 50) == pytest.approx(231, abs=1)
