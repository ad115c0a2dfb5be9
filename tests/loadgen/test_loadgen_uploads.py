"""The load generator's upload sizes: fixed or the SDK's adaptive choice, each payload on its own
upload leg of the same trace."""

from __future__ import annotations

import collections
import json

import pytest

from modipick.core import Candidate
from modipick.loadgen.cli import main as loadgen_main
from modipick.loadgen.errors import LoadgenInputError
from modipick.loadgen.records import read_records
from modipick.loadgen.traces import open_network
from modipick.loadgen.uploads import (AdaptiveUpload, FixedUpload, SizedImages, UploadPlan, build_menu,
                                      parse_uploads, read_input_sizes)

SIZES = (96, 128, 224)
# the trivial Selector's fake pool, each given an input size
INPUT_SIZES = {"digits_tiny": 96, "digits_small": 128, "digits_medium": 128, "digits_large": 224}
PROFILES = [Candidate("digits_tiny", 1, 85.0, 2.0, 0.2), Candidate("digits_small", 1, 92.0, 6.0, 0.8),
            Candidate("digits_medium", 1, 96.0, 15.0, 2.0), Candidate("digits_large", 1, 98.5, 40.0, 5.0)]


@pytest.fixture(scope="module")
def images() -> SizedImages:
    return SizedImages(SIZES, count=2)


def test_each_size_is_a_jpeg_growing_with_the_size(images):
    assert images.mean_bytes(96) < images.mean_bytes(128) < images.mean_bytes(224)
    sample = images.sample(3, 128)
    assert sample.input.encoded_image[:2] == b"\xff\xd8" and sample.nbytes == len(sample.input.encoded_image)


def test_adaptive_sends_the_default_then_what_each_clients_link_carries(images):
    menu = build_menu(PROFILES, INPUT_SIZES, images, 224)
    assert [v.input_size for v in menu.variants] == [96, 128, 224]
    chooser = AdaptiveUpload(menu, reply_ms=5.0)
    assert chooser.choose("a", 100.0) == 224  # nothing measured yet
    big = images.mean_bytes(224)
    for _ in range(10):
        chooser.observe("slow", big, big / 300.0)   # 300 B/ms: 224 px leaves too little of 100 ms for its model
        chooser.observe("fast", big, big / 30_000.0)
    assert chooser.choose("slow", 100.0) < 224
    assert chooser.choose("fast", 100.0) == 224
    assert sum(chooser.chosen.values()) == 3 and FixedUpload(128).choose("x", 1.0) == 128


def test_a_bigger_payload_takes_longer_on_the_same_trace(images):
    plan = UploadPlan(FixedUpload(96), images)
    network = open_network("hsdpa_3g_norway/norway_bus_1")
    small, big = plan.network(network, 4_000), plan.network(network, 40_000)
    assert plan.network(network, 4_000) is small
    assert all(small.upload_ms(0, t) < big.upload_ms(0, t) for t in (0.0, 10.0, 100.0))
    with pytest.raises(LoadgenInputError, match="not a link trace"):
        plan.network(open_network("param:50,5"), 4_000)


def test_bad_upload_specs_are_named():
    assert parse_uploads("adaptive, fixed:224", SIZES) == ["adaptive", "fixed:224"]
    for bad in ("fixed:100", "fixed", "sometimes", ""):
        with pytest.raises(LoadgenInputError, match="--uploads"):
            parse_uploads(bad, SIZES)


def test_manifest_sizes_are_read(tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"models": [{"name": "a", "input_size": 96}, {"name": "b"}]}))
    assert read_input_sizes(path) == {"a": 96}
    path.write_text("{}")
    with pytest.raises(LoadgenInputError, match="input sizes"):
        read_input_sizes(path)


def test_run_compares_adaptive_and_fixed_uploads_on_one_trace(trivial, tmp_path, capsys):
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"models": [{"name": n, "input_size": s, "declared_accuracy": 90.0}
                                                    for n, s in INPUT_SIZES.items()]}))
    records = tmp_path / "records.csv"
    code = loadgen_main(["run", "--target", trivial.address, "--network", "hsdpa_3g_norway/norway_bus_1",
                         "--mode", "realtime", "--uploads", "adaptive,fixed:224", "--upload-sizes", "96,128,224",
                         "--profiler", trivial.address, "--manifest", str(manifest), "--sla", "400",
                         "--count", "12", "--rate", "20", "--arrivals", "constant", "--records", str(records),
                         "--progress", "none"])
    captured = capsys.readouterr()
    out = captured.out
    assert code == 0, captured.err
    assert "upload=adaptive" in out and "upload=fixed:224" in out
    sent = [line for line in out.splitlines() if "sizes sent" in line]
    assert len(sent) == 1 and "upload=adaptive" in sent[0]  # only the adaptive run chooses
    chosen = eval(sent[0].split("sizes sent ", 1)[1])  # {px: requests}
    assert sum(chosen.values()) == 12 and set(chosen) <= set(SIZES)
    assert trivial.selector.served >= 20
    uploads = collections.Counter(r.upload for r in read_records(records))
    assert uploads == {"adaptive": 12, "fixed:224": 12}  # each record says what its client sent


def test_uploads_need_realtime_and_the_models_sizes(trivial):
    base = ["run", "--target", trivial.address, "--network", "hsdpa_3g_norway/norway_bus_1", "--uploads", "adaptive",
            "--count", "2", "--progress", "none"]
    assert loadgen_main(base + ["--mode", "link"]) == 2
    assert loadgen_main(base + ["--mode", "realtime"]) == 2  # no --profiler / --manifest
