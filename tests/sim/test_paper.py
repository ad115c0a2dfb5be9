"""`modipick sim paper` and `modipick sim scenarios` end to end (tiny request counts)."""

from __future__ import annotations

from sim_support import read_csv

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_paper_command_writes_the_five_figures_and_csvs(run_sim, tmp_path):
    out, figures = tmp_path / "paper", tmp_path / "img"
    result = run_sim("paper", "--out", str(out), "--figures-dir", str(figures), "--requests", "150", "--quiet")
    assert result.code == 0, result.err
    assert "| 9 | ModiPick vs related accurate" in (out / "claims.md").read_text()
    for name in ("fig6a", "fig6b", "fig7", "fig8", "fig9"):
        png = figures / f"{name}.png"
        assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 10_000, name
    rows = read_csv(out / "summary.csv")
    scenarios = {r["scenario"] for r in rows}
    assert {"fig6_campus_wifi", "fig9_nasnet_fictional", "cv_sweep_cv000", "cv_sweep_cv100"} <= scenarios
    fig9 = {r["policy"] for r in rows if r["scenario"] == "fig9_nasnet_fictional"}
    assert fig9 == {"modipick", "pure_random", "related_random", "related_accurate", "oracle"}
    # Fig 7's start: CV 0 means every request has exactly 100 ms of network at SLA 100: none fits
    cv0 = [r for r in rows if r["scenario"] == "cv_sweep_cv000" and r["sla_ms"] == "100"]
    assert cv0 and all(float(r["attainment_pct"]) == 0.0 for r in cv0)


def test_scenarios_list_and_one_scenario(run_sim, tmp_path):
    listed = run_sim("scenarios", "--list")
    assert listed.code == 0
    for name in ("indep_campus_table2", "nasnet_fictional", "drift_campus_table2", "cold_poor_campus_table2",
                 "trace_lte_tmobile_table2", "indep_campus_c5"):
        assert name in listed.out
    out = tmp_path / "s"
    result = run_sim("scenarios", "--only", "indep_campus_table2,drift_campus_table2", "--requests", "400",
                     "--quiet", "--out", str(out))
    assert result.code == 0, result.err
    rows = read_csv(out / "summary.csv")
    assert {r["scenario"] for r in rows} == {"indep_campus_table2", "drift_campus_table2"}
    assert (out / "timeline.csv").is_file()
