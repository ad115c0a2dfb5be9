"""The real traces ship with the package (source and licence beside each set), `modipick traces
list` shows them, `--traces-dir` / MODIPICK_TRACES_DIR add others, and relative names resolve."""

from __future__ import annotations

import json

import pytest

from modipick.cli import main as modipick_main
from modipick.loadgen.cli import main as loadgen_main
from modipick.loadgen.traces import NetworkOptions, open_network, upload_stats
from modipick.loadgen.traces.catalog import SHIPPED_DIR, search_path, trace_sets

MAX_FILE_BYTES = 2_000_000


def test_every_shipped_set_carries_its_source_and_a_licence_text_and_stays_small():
    sets = trace_sets([SHIPPED_DIR])
    assert {s.name for s in sets} >= {"lte_mahimahi_short", "hsdpa_3g_norway"}
    for s in sets:
        assert (s.folder / "SOURCE.md").is_file(), s.name
        licences = [p for p in ("LICENSE", "COPYING") if (s.folder / p).is_file()]
        assert licences, f"{s.name}: no licence text beside the traces"
        assert "Licence:" in (s.folder / "SOURCE.md").read_text(encoding="utf-8")
        for path in s.folder.iterdir():
            assert path.stat().st_size < MAX_FILE_BYTES, path
    gpl = next(s for s in sets if s.name == "lte_mahimahi_short")
    assert "GNU GENERAL PUBLIC LICENSE" in (gpl.folder / "COPYING").read_text(encoding="utf-8")
    assert "Version 3" in (gpl.folder / "COPYING").read_text(encoding="utf-8")


def test_no_unlicensed_set_ships():
    assert not (SHIPPED_DIR / "wifi_cellular_campus_sbu").exists()  # no licence: not redistributable


def test_traces_list_shows_shipped_sets_and_added_folders(tmp_path, capsys):
    extra = tmp_path / "mine" / "office_wifi"
    extra.mkdir(parents=True)
    (extra / "walk_1.csv").write_text("1,1000000\n2,500000\n", encoding="utf-8")
    (extra / "SOURCE.md").write_text("# Office WiFi\n- Licence: CC0-1.0\n", encoding="utf-8")

    assert modipick_main(["traces", "list"]) == 0
    shown = capsys.readouterr().out
    assert "lte_mahimahi_short/TMobile-LTE-short" in shown and "hsdpa_3g_norway/norway_bus_1" in shown
    assert "GNU General Public License v3.0" in shown and "licence: MIT" in shown
    assert "office_wifi" not in shown

    assert modipick_main(["traces", "list", "--traces-dir", str(tmp_path / "mine"), "--format", "json"]) == 0
    listed = {s["name"]: s for s in json.loads(capsys.readouterr().out)}
    assert listed["office_wifi"]["traces"] == ["office_wifi/walk_1.csv"]
    assert listed["office_wifi"]["licence"] == "CC0-1.0" and not listed["office_wifi"]["shipped"]
    assert listed["lte_mahimahi_short"]["shipped"]


def test_traces_list_rejects_a_missing_folder(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        modipick_main(["traces", "list", "--format", "xml"])
    assert exit_.value.code == 2
    assert modipick_main(["traces", "list", "--traces-dir", str(tmp_path / "nope")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_relative_names_resolve_to_shipped_traces_and_added_folders_come_first(tmp_path):
    shipped = open_network("lte_mahimahi_short/TMobile-LTE-short", NetworkOptions(traces_dirs=search_path(environ={})))
    assert shipped.name == "TMobile-LTE-short"
    mine = tmp_path / "lte_mahimahi_short"
    mine.mkdir()
    (mine / "TMobile-LTE-short.up").write_text("1\n2\n3\n", encoding="utf-8")
    (mine / "TMobile-LTE-short.down").write_text("1\n2\n3\n", encoding="utf-8")
    dirs = search_path(environ={"MODIPICK_TRACES_DIR": str(tmp_path)})
    assert dirs == (tmp_path, SHIPPED_DIR)
    local = open_network("lte_mahimahi_short/TMobile-LTE-short", NetworkOptions(traces_dirs=dirs))
    assert upload_stats(local).mean_ms != upload_stats(shipped).mean_ms


def test_loadgen_stats_reads_a_shipped_trace_by_name(capsys):
    assert loadgen_main(["stats", "hsdpa_3g_norway/norway_bus_1", "--request-bytes", "30000",
                         "--base-rtt-ms", "20"], environ={}) == 0
    out = capsys.readouterr().out
    assert "norway_bus_1" in out and "125.4" in out  # its SOURCE.md's mean for this request
