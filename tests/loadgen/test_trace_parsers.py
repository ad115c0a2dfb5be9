"""Trace readers on small files written here; transfer times checked against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from modipick.loadgen.errors import LoadgenInputError
from modipick.loadgen.traces import (NetworkOptions, ParametricLegs, RequestLegs, Sizes, TraceLegs, cv_sweep,
                                     named_profiles, open_network, read_mahimahi, read_request_csv,
                                     read_throughput, rescale_to_median, upload_stats)

# ---- Mahimahi -------------------------------------------------------------------------------

MM = "1\n1\n3\n5\n10\n"  # two packets at 1 ms, one at 3, 5 and 10 ms; period 10 ms


@pytest.mark.parametrize(("nbytes", "start", "expected"), [
    (1500, 0.0, 1.0), (3000, 0.0, 1.0), (4500, 0.0, 3.0), (7500, 0.0, 10.0),
    (9000, 0.0, 11.0),            # the sixth packet wraps to the next period's first opportunity
    (1, 6.0, 4.0), (3000, 6.0, 5.0),
    (1500, 10.5, 0.5),            # a start in the second period
    (0, 3.0, 0.0),
    (1500, 1.0, 0.0),             # an opportunity exactly at the start is usable
])
def test_mahimahi_transfer_times(write, nbytes, start, expected):
    schedule = read_mahimahi(write("t.up", MM))
    assert schedule.period_ms == 10.0 and schedule.opportunities == 5
    assert schedule.transfer_ms(nbytes, start) == pytest.approx(expected)
    assert schedule.transfer_ms_many(nbytes, np.array([start]))[0] == pytest.approx(expected)


def test_mahimahi_rate_and_scaling(write):
    schedule = read_mahimahi(write("t.up", MM))
    assert schedule.mean_rate_bps == pytest.approx(5 * 1500 * 8 / 0.010)
    assert schedule.scaled(2.0).transfer_ms(4500, 0.0) == pytest.approx(6.0)


def test_mahimahi_pair_and_single_file(write, tmp_path):
    write("link.up", "2\n4\n")
    write("link.down", "1\n")
    both = open_network(str(tmp_path / "link"), NetworkOptions(sizes=Sizes(1500, 1500)))
    assert isinstance(both, TraceLegs) and both.name == "link"
    assert both.upload_ms(0, 0.0) == pytest.approx(2.0) and both.return_ms(0, 0.0) == pytest.approx(1.0)
    assert isinstance(open_network(str(tmp_path / "link.down")), TraceLegs)  # a sibling name opens the pair
    single = open_network(str(write("solo.txt", "3\n6\n")), NetworkOptions(sizes=Sizes(1500, 1500)))
    assert single.upload_ms(0, 0.0) == pytest.approx(3.0) and single.return_ms(0, 0.0) == pytest.approx(3.0)


@pytest.mark.parametrize(("text", "line", "words"), [
    ("1\n2\nabc\n", 3, "integer"),
    ("5\n3\n", 2, "must not decrease"),
    ("1\n-4\n", 2, ">= 0"),
    ("0\n0\n", 2, "nonzero"),
    ("\n\n", None, "empty"),
])
def test_mahimahi_bad_files_name_file_and_line(write, text, line, words):
    path = write("bad.up", text)
    with pytest.raises(LoadgenInputError) as err:
        read_mahimahi(path)
    assert err.value.line == line and words in str(err.value)
    assert str(err.value).startswith(f"{path}:{line}:" if line else f"{path}:")


# ---- throughput series ----------------------------------------------------------------------

def test_cooked_mbps_series(write):
    # 8 Mbps = 1e6 B/s over [0,1), nothing over [1,2), 16 Mbps over [2,3); period 3 s
    series = read_throughput(write("norway_x", "0.0\t8\n1.0\t0\n2.0\t16\n"))
    assert series.period_s == pytest.approx(3.0)
    assert series.transfer_ms(500_000, 0.0) == pytest.approx(500.0)
    assert series.transfer_ms(1_500_000, 0.0) == pytest.approx(2250.0)
    assert series.transfer_ms(1_000_000, 500.0) == pytest.approx(1750.0)
    assert series.transfer_ms(2_000_000, 2500.0) == pytest.approx(1500.0)  # wraps into the next period


def test_sbu_bytes_per_second_series_holds_rate_until_sample_time(write):
    # sample t is the rate over [t-1, t): 125 kB/s, 250 kB/s, 0, 125 kB/s; period 4 s
    series = read_throughput(write("7_1_wifi.csv", "1,125000\n2,250000\n3,0\n4,125000\n"))
    assert series.period_s == pytest.approx(4.0)
    assert series.transfer_ms(125_000, 0.0) == pytest.approx(1000.0)
    assert series.transfer_ms(375_000, 0.0) == pytest.approx(2000.0)
    assert series.transfer_ms(500_000, 0.0) == pytest.approx(4000.0)


def test_units_from_header_flag_and_heuristic(write):
    assert read_throughput(write("a.csv", "time_s,mbps\n0,8\n1,8\n")).transfer_ms(1e6, 0) == pytest.approx(1000)
    assert read_throughput(write("b.csv", "0,8\n1,8\n")).transfer_ms(1e6, 0) == pytest.approx(1000)  # small: Mbps
    forced = read_throughput(write("c.csv", "0,8\n1,8\n"), unit="KBps")
    assert forced.transfer_ms(8000, 0) == pytest.approx(1000)


def test_throughput_to_delivery_schedule(write):
    series = read_throughput(write("flat", "0\t12\n1\t12\n"))  # 1.5 MB/s = one packet per ms
    schedule = series.to_schedule()
    assert schedule.opportunities == 2000
    assert schedule.transfer_ms(15_000, 0.0) == pytest.approx(10.0)


@pytest.mark.parametrize(("text", "line", "words"), [
    ("0\t1\n1\tx\n", 2, "rate is not a number"),
    ("0\t1\n0\t2\n", 2, "time must increase"),
    ("0\t1\n1\t-2\n", 2, ">= 0"),
    ("0\t1\n", None, "at least two"),
    ("0\t0\n1\t0\n", 2, "delivers"),
    ("0 1 2\n1\n", 2, "expected 'time,rate'"),
])
def test_throughput_bad_files(write, text, line, words):
    path = write("bad_series", text)
    with pytest.raises(LoadgenInputError) as err:
        read_throughput(path)
    assert err.value.line == line and words in str(err.value)


# ---- per-request CSV ------------------------------------------------------------------------

def test_request_csv_rows_wrap_and_give_arrivals(write):
    path = write("req.csv", "upload_ms,return_ms,send_time_s,ignored\n10,2,5.0,x\n20,4,5.5,y\n")
    legs = open_network(str(path))
    assert isinstance(legs, RequestLegs)
    assert [legs.upload_ms(i, 0) for i in range(3)] == [10.0, 20.0, 10.0]
    assert [legs.return_ms(i, 0) for i in range(2)] == [2.0, 4.0]
    assert legs.arrivals_s().tolist() == [0.0, 0.5]


def test_request_csv_total_split_and_size_scaled_return(write):
    halves = open_network(str(write("n.csv", "network_ms\n30\n")))
    assert (halves.upload_ms(0, 0), halves.return_ms(0, 0)) == (15.0, 15.0)
    scaled = open_network(str(write("u.csv", "upload_ms\n33\n")),
                          NetworkOptions(sizes=Sizes(330_000, 3_300, base_rtt_ms=4.0)))
    assert scaled.upload_ms(0, 0) == pytest.approx(35.0) and scaled.return_ms(0, 0) == pytest.approx(2.33)


@pytest.mark.parametrize(("text", "line", "words"), [
    ("foo,bar\n1,2\n", 1, "upload_ms or network_ms"),
    ("upload_ms\n1\n-3\n", 3, ">= 0"),
    ("upload_ms,return_ms\n1,2\n4\n", 3, "expected 2 fields"),
    ("upload_ms\nfast\n", 2, "not a number"),
    ("upload_ms,send_time_s\n1,5\n1,4\n", 3, "must not decrease"),
    ("upload_ms\n", None, "no rows"),
])
def test_request_csv_bad_files(write, text, line, words):
    with pytest.raises(LoadgenInputError) as err:
        read_request_csv(write("bad.csv", text))
    assert err.value.line == line and words in str(err.value)


# ---- parametric profiles, sweeps, rescaling -------------------------------------------------

def test_named_profiles_from_paper_table():
    table = named_profiles()
    assert table["campus_wifi"].mean_ms == pytest.approx(57.87) and table["lte"].std_ms == pytest.approx(170.59)
    stats = upload_stats(open_network("home"))
    assert stats.mean_ms == pytest.approx(92.02, rel=0.03) and stats.std_ms == pytest.approx(48.38, rel=0.05)


def test_cv_sweep_fixed_mean_and_lognormal():
    profiles = cv_sweep(50.0, [0.0, 0.5, 1.0])
    assert [p.std_ms for p in profiles] == [0.0, 25.0, 50.0]
    assert upload_stats(ParametricLegs(profiles[0])).std_ms == 0.0
    log_stats = upload_stats(open_network("cv:50,1.0,lognormal"))
    assert log_stats.mean_ms == pytest.approx(50, rel=0.05) and log_stats.cv == pytest.approx(1.0, rel=0.1)


def test_parametric_legs_are_seeded_and_scale_with_size():
    a, b = ParametricLegs(named_profiles()["lte"], seed=1), ParametricLegs(named_profiles()["lte"], seed=1)
    late = [b.upload_ms(i, 0) for i in (5000, 3)]  # drawing far ahead first must not change earlier draws
    assert [a.upload_ms(i, 0) for i in (5000, 3)] == late
    assert ParametricLegs(named_profiles()["lte"], seed=2).upload_ms(3, 0) != late[1]
    half = ParametricLegs(named_profiles()["lte"], Sizes(165_000, 330_000), seed=1)
    assert half.upload_ms(3, 0) == pytest.approx(late[1] / 2) and half.return_ms(3, 0) == pytest.approx(late[1])


def test_rescale_to_median_keeps_shape(write):
    lines = "".join(f"{t}\n" for t in sorted([1, 2, 2, 3, 7, 8, 15, 16, 40, 41, 42, 90, 100, 130, 131, 200]))
    legs = open_network(str(write("shape.up", lines)), NetworkOptions(sizes=Sizes(4500, 1500)))
    before = upload_stats(legs)
    after = upload_stats(rescale_to_median(legs, 3 * before.p50_ms))
    assert after.p50_ms == pytest.approx(3 * before.p50_ms, rel=0.05)
    assert after.p95_ms / after.p50_ms == pytest.approx(before.p95_ms / before.p50_ms, rel=0.1)
    assert after.cv == pytest.approx(before.cv, rel=0.1)
    named = upload_stats(open_network("lte", NetworkOptions(rescale_median_ms=100.0)))
    assert named.p50_ms == pytest.approx(100.0, rel=0.03) and named.cv == pytest.approx(170.59 / 364.66, rel=0.1)


@pytest.mark.parametrize(("spec", "words"), [
    ("no_such_network", "no such trace file"),
    ("param:fast,1", "not a number"),
    ("cv:50", "expected cv:MEAN,CV"),
    ("cv:50,0.5,gamma", "distribution"),
])
def test_bad_network_specs(spec, words):
    with pytest.raises(LoadgenInputError) as err:
        open_network(spec)
    assert words in str(err.value) and str(err.value).startswith(spec)
