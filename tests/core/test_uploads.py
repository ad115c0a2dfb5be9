import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modipick.core import Candidate, make_policy
from modipick.core.returnleg import empirical
from modipick.core.uploads import (NO_DEVICE, BandwidthEstimate, DeviceFallback, UploadMenu, UploadVariant,
                                   ValueMemo, choose_upload, models_for_size, variant_value)

# input size -> (model, accuracy, mean ms); a bigger input opens more accurate models
SIZED = (
    (Candidate("v1-025-128", 1, 41.5, 2.0, 0.1), 128),
    (Candidate("v1-100-128", 1, 65.2, 3.0, 0.1), 128),
    (Candidate("v1-100-224", 1, 70.9, 5.0, 0.1), 224),
    (Candidate("nasnet-large-331", 1, 82.6, 110.0, 0.4), 331),
)
PAYLOADS = {128: 6_000, 224: 16_000, 331: 36_000, 0: 330_000}


def menu(default: int = 0) -> UploadMenu:
    return UploadMenu(tuple(UploadVariant(s, b, models_for_size(SIZED, s)) for s, b in PAYLOADS.items()), default)


def risk_aware():
    return make_policy("risk_aware")


def test_models_for_size_takes_those_the_server_can_scale_down_to():
    assert [m.name for m in models_for_size(SIZED, 128)] == ["v1-025-128", "v1-100-128"]
    assert len(models_for_size(SIZED, 224)) == 3
    assert len(models_for_size(SIZED, 0)) == 4  # the original feeds every model
    assert models_for_size(SIZED, 96) == ()


def test_without_an_estimate_the_default_is_sent():
    choice = choose_upload(menu(default=224), BandwidthEstimate(), 200.0, risk_aware(), return_ms=20.0)
    assert choice.variant.input_size == 224 and not choice.estimated and math.isnan(choice.expected_accuracy)
    assert choose_upload(menu(), None, 200.0, risk_aware(), return_ms=20.0).variant.input_size == 0


def test_slow_link_sends_the_small_input_fast_link_the_large_one():
    slow = BandwidthEstimate().observe(10_000, 100.0)   # 100 B/ms: 6 KB in 60 ms, 16 KB in 160 ms
    choice = choose_upload(menu(), slow, 150.0, risk_aware(), return_ms=20.0)
    assert choice.variant.input_size == 128 and choice.estimated
    assert choice.expected_accuracy == pytest.approx(65.2)
    fast = BandwidthEstimate().observe(330_000, 50.0)   # 6.6 KB/ms: 36 KB in 5.5 ms
    choice = choose_upload(menu(), fast, 200.0, risk_aware(), return_ms=20.0)
    assert choice.variant.input_size == 331 and choice.expected_accuracy == pytest.approx(82.6)


def test_the_choice_is_the_best_of_the_variants_and_ties_go_to_the_smaller_payload():
    bw = BandwidthEstimate().observe(330_000, 50.0)
    choice = choose_upload(menu(), bw, 60.0, risk_aware(), return_ms=20.0)
    values = dict(choice.values)
    assert choice.expected_accuracy == max(values.values())
    # 331 px and the original both lead to v1-100-224 at 60 ms: the 331 px JPEG is not chosen either
    assert choice.variant.input_size == 224


def test_device_answers_count_when_they_arrive_within_the_sla():
    hopeless = BandwidthEstimate().observe(1_000, 1_000.0)  # 1 B/ms: nothing uploads in time
    device = DeviceFallback(accuracy=41.5, latency_ms=150.0)
    assert choose_upload(menu(), hopeless, 200.0, risk_aware(), return_ms=20.0,
                         device=device).expected_accuracy == pytest.approx(41.5)
    assert choose_upload(menu(), hopeless, 100.0, risk_aware(), return_ms=20.0,
                         device=device).expected_accuracy == 0.0  # T_D > SLA


def test_a_learned_return_leg_distribution_is_used():
    bw = BandwidthEstimate().observe(16_000, 40.0)  # 400 B/ms: 224 px in 40 ms, 128 px in 15 ms
    wide = empirical([10.0 + i for i in range(100)])  # R uniform on 10..109
    v224 = menu().variant(224)
    value = variant_value(v224, bw.upload_ms(v224.payload_bytes), 120.0, risk_aware(), return_ms=0.0,
                          return_leg=wide)
    assert 0.0 < value < 70.9  # the reply leg can take too long


def test_estimate_keeps_a_window_of_rates_net_of_the_base_latency():
    bw = BandwidthEstimate(window=2, base_ms=10.0, history=2)
    for payload, ms in ((1000, 20.0), (2000, 30.0), (3000, 40.0)):
        bw = bw.observe(payload, ms)
    assert bw.rates == (100.0, 100.0)
    assert bw.upload_ms(500) == (15.0, 15.0)
    assert bw.observe(0, 10.0) is bw
    with pytest.raises(ValueError):
        BandwidthEstimate(window=0)


def test_menu_rejects_what_it_cannot_mean():
    with pytest.raises(ValueError, match="default size"):
        UploadMenu(menu().variants, 160)
    with pytest.raises(ValueError, match="no model"):
        UploadVariant(96, 3_000, ())
    with pytest.raises(ValueError, match="payload"):
        UploadVariant(96, 0, models_for_size(SIZED, 128))


@settings(max_examples=200, deadline=None)
@given(rate=st.floats(1.0, 20_000.0), sla=st.floats(20.0, 2_000.0), ret=st.floats(0.0, 200.0),
       policy=st.sampled_from(["risk_aware", "modipick", "dynamic_greedy"]),
       dev_acc=st.floats(0.0, 60.0), dev_ms=st.floats(10.0, 500.0))
def test_the_choice_is_never_worse_than_any_fixed_variant(rate, sla, ret, policy, dev_acc, dev_ms):
    p = make_policy(policy)
    bw = BandwidthEstimate().observe(100_000, 100_000 / rate)
    device = DeviceFallback(dev_acc, dev_ms)
    choice = choose_upload(menu(), bw, sla, p, return_ms=ret, device=device, seed=1)
    for v in menu().variants:
        fixed = variant_value(v, bw.upload_ms(v.payload_bytes), sla, p, return_ms=ret, device=device,
                              rng=random.Random(1))
        assert choice.expected_accuracy >= fixed - 1e-9
    assert 0.0 <= choice.expected_accuracy <= 82.6 + 1e-9
    if dev_ms <= sla:
        assert choice.expected_accuracy >= dev_acc - 1e-9


def test_older_uploads_can_weigh_less():
    bw = BandwidthEstimate(decay=0.5, long_weight=0.0)
    for ms in (100.0, 10.0):  # an old slow upload, then a fast one
        bw = bw.observe(10_000, ms)
    assert bw.weights() == pytest.approx((1 / 3, 2 / 3))
    assert BandwidthEstimate(rates=(1.0, 2.0, 3.0), decay=1.0).weights() == pytest.approx((1 / 3,) * 3)
    assert BandwidthEstimate(rates=(1.0, 2.0, 3.0), long_weight=0.0).weights() == pytest.approx((1 / 7, 2 / 7, 4 / 7))
    v = menu().variant(224)
    recent = variant_value(v, bw.upload_ms(v.payload_bytes), 150.0, risk_aware(), return_ms=20.0,
                           weights=bw.weights())
    alike = variant_value(v, bw.upload_ms(v.payload_bytes), 150.0, risk_aware(), return_ms=20.0)  # equal weights
    assert recent > alike  # the fast, recent upload counts more
    with pytest.raises(ValueError, match="decay"):
        BandwidthEstimate(decay=0.0)


def test_the_long_view_shares_the_weight_with_the_recent_one():
    bw = BandwidthEstimate(rates=(1.0, 2.0, 3.0, 4.0, 5.0, 6.0), window=4, decay=0.5, long_weight=0.6)
    # 0.6 / 6 each, plus 0.4 x (1, 2, 4, 8) / 15 on the last four
    assert bw.weights() == pytest.approx((0.1, 0.1, 0.1 + 0.4 / 15, 0.1 + 0.8 / 15, 0.1 + 1.6 / 15, 0.1 + 3.2 / 15))
    for _ in range(60):
        bw = bw.observe(1_000, 10.0)
    assert len(bw.rates) == 48  # the default history
    assert len(BandwidthEstimate(window=8, history=2).observe(1, 1.0).observe(1, 1.0).observe(1, 1.0).rates) == 3
    with pytest.raises(ValueError, match="long weight"):
        BandwidthEstimate(long_weight=1.5)
    with pytest.raises(ValueError, match="history"):
        BandwidthEstimate(history=0)


def _slow_then_fast(fast_uploads: int, **estimate) -> BandwidthEstimate:
    # slow: 200 B/ms, the 128 px JPEG (6 KB) in 30 ms, 224 px (16 KB) in 80 ms: too slow for SLA 100;
    # fast: 4,000 B/ms, 224 px in 4 ms
    bw = BandwidthEstimate(**estimate)
    for _ in range(40):
        bw = bw.observe(6_000, 30.0)
    for _ in range(fast_uploads):
        bw = bw.observe(16_000, 4.0)
    return bw


def test_a_short_burst_does_not_buy_a_size_the_link_carries_only_now_and_then():
    """At SLA 100 only the 128 px models are safe on the slow link (65.2 %); 224 px is worth 70.9 x
    P(the link is fast). After 40 slow uploads, three fast ones: the recent view alone puts P at
    14/15 (224 px: 66.2 > 65.2) and sends 224 px; with the long view, P = 0.6 x 3/43 + 0.4 x 14/15
    = 0.42, and 128 px stays. Once the link has been fast for the whole history, 224 px goes."""
    def choice(bw: BandwidthEstimate) -> int:
        return choose_upload(menu(), bw, 100.0, risk_aware(), return_ms=20.0).variant.input_size

    assert choice(_slow_then_fast(3, long_weight=0.0)) == 224
    burst = choose_upload(menu(), _slow_then_fast(3), 100.0, risk_aware(), return_ms=20.0)
    assert burst.variant.input_size == 128 and burst.expected_accuracy == pytest.approx(65.2)
    assert dict(burst.values)[224] == pytest.approx(70.9 * (0.6 * 3 / 43 + 0.4 * 14 / 15), abs=0.1)
    assert choice(_slow_then_fast(48)) == 224


def test_a_memo_gives_the_same_choice_and_keeps_a_table_per_setting():
    memo = ValueMemo(settings=2)
    policy = risk_aware()
    m = menu()
    bw = _slow_then_fast(3)
    for sla in (100.0, 300.0, 100.0):
        fresh = choose_upload(m, bw, sla, policy, return_ms=20.0)
        kept = choose_upload(m, bw, sla, policy, return_ms=20.0, memo=memo)
        assert kept == fresh
    table = memo.values(m, policy, 100.0, 20.0, None, NO_DEVICE)
    assert table and all(size in PAYLOADS for size, _ in table)
    assert memo.values(m, policy, 300.0, 20.0, None, NO_DEVICE)  # each SLA its own table
    assert memo.values(m, policy, 150.0, 20.0, None, NO_DEVICE) == {}  # another SLA: nothing carried over
    assert memo.values(menu(), policy, 100.0, 20.0, None, NO_DEVICE) == {}  # another menu object too
    assert memo.values(m, policy, 100.0, 20.0, None, NO_DEVICE) == {}  # only the last 2 settings are kept
