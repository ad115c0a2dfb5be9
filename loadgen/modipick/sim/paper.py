"""The paper's simulation setups (section 4) and `modipick sim paper`: Figures 6a, 6b, 7, 8, 9.

All with the authors' assumptions: return leg = upload leg ("mirror"), network times normal and
resampled while <= 0, warmed-up profiles equal to the true means/stds of table2.csv.
  Fig 6   campus WiFi, first 11 models, static greedy vs ModiPick, SLA sweep
  Fig 7/8 mean 50 ms, CV 0..100 %, SLA 100 and 250 ms, ModiPick
  Fig 9   all 12 models (with NasNet Fictional), 50 +- 25 ms, ModiPick vs pure random,
          related random, related accurate
The oracle runs too (summary.csv only, not drawn): the hindsight bound for every point.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from modipick.sim import plots
from modipick.sim.models import load_models, select_models
from modipick.sim.networks import NormalNetwork, parse_network
from modipick.sim.runner import PointResult
from modipick.sim.scenario import Scenario, parse_policies

PAPER_REQUESTS = 10_000
PAPER_SLA = tuple(sorted({float(s) for s in range(10, 301, 10)} | {115.0}))  # 115: the claims of 4.2
CV_POINTS = tuple(round(0.1 * i, 1) for i in range(11))
CV_SLAS = (100.0, 250.0)
FIG6_POLICIES = ("static_greedy", "modipick")
FIG9_POLICIES = ("modipick", "pure_random", "related_random", "related_accurate")


@dataclass(frozen=True)
class PaperConfig:
    requests: int = PAPER_REQUESTS
    seeds: tuple[int, ...] = (1,)
    threshold_ms: float | None = None  # None: core's default
    models: str = "table2"
    networks_csv: str = "networks"
    sla_ms: tuple[float, ...] = PAPER_SLA

    def policies(self, names: Sequence[str]):
        defaults: dict[str, Any] = {} if self.threshold_ms is None else {"threshold_ms": self.threshold_ms}
        return parse_policies(",".join((*names, "oracle")), defaults)


def fig6_scenario(cfg: PaperConfig) -> Scenario:
    models = select_models(load_models(cfg.models), exclude=("NasNet Fictional",)) \
        if cfg.models == "table2" else load_models(cfg.models)
    return Scenario("fig6_campus_wifi", models[:11], parse_network("campus_wifi", networks_csv=cfg.networks_csv),
                    "mirror", cfg.sla_ms, cfg.requests, cfg.seeds, cfg.policies(FIG6_POLICIES))


def cv_scenarios(cfg: PaperConfig) -> list[Scenario]:
    models = fig6_scenario(cfg).models
    return [Scenario(f"cv_sweep_cv{round(100 * cv):03d}", models, NormalNetwork(50.0, 50.0 * cv, f"normal(50, CV {cv:.0%})"),
                     "mirror", CV_SLAS, cfg.requests, cfg.seeds, cfg.policies(("modipick",)), meta={"cv": cv})
            for cv in CV_POINTS]


def fig9_scenario(cfg: PaperConfig) -> Scenario:
    return Scenario("fig9_nasnet_fictional", load_models(cfg.models),
                    parse_network("artificial", networks_csv=cfg.networks_csv), "mirror", cfg.sla_ms,
                    cfg.requests, cfg.seeds, cfg.policies(FIG9_POLICIES))


def paper_scenarios(cfg: PaperConfig) -> list[Scenario]:
    return [fig6_scenario(cfg), *cv_scenarios(cfg), fig9_scenario(cfg)]


def draw_figures(scenarios: Sequence[Scenario], results: Sequence[PointResult], out: Path) -> list[Path]:
    by_scenario: dict[str, list[PointResult]] = {}
    for r in results:
        by_scenario.setdefault(r.scenario, []).append(r)
    fig6 = by_scenario["fig6_campus_wifi"]
    by_cv = {s.meta["cv"]: by_scenario[s.name] for s in scenarios if "cv" in s.meta}
    return [
        plots.latency_accuracy_vs_sla(fig6, FIG6_POLICIES, "Fig. 6a: static greedy vs ModiPick, campus WiFi, "
                                      "11 models", out / "fig6a.png"),
        plots.model_usage_vs_sla(fig6, "modipick", "Fig. 6b: models used by ModiPick, campus WiFi",
                                 out / "fig6b.png"),
        plots.cv_sweep(by_cv, "modipick", CV_SLAS, out / "fig7.png"),
        plots.usage_vs_cv(by_cv, "modipick", CV_SLAS, out / "fig8.png"),
        plots.latency_accuracy_vs_sla(by_scenario["fig9_nasnet_fictional"], FIG9_POLICIES,
                                      "Fig. 9: decomposition with NasNet Fictional, network 50±25 ms",
                                      out / "fig9.png", shade=False),
    ]
