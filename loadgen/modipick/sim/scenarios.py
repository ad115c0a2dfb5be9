"""The scenarios: where the paper's algorithm loses, plus drift, a cold model, heavy-tailed
real traces and the CPU (c5) pool. `modipick sim scenarios --list` prints them.

Every scenario runs the `policies` given on the command line (default: ModiPick, dynamic greedy,
static greedy where it matters, and the oracle) on the same draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from modipick.sim.errors import SimInputError
from modipick.sim.models import load_models, select_models
from modipick.sim.networks import DEFAULT_PAYLOAD_BYTES, parse_network
from modipick.sim.paths import SHIPPED_DIR, resolve
from modipick.sim.scenario import ColdStart, Drift, Learning, Scenario, parse_policies, parse_sla

DEFAULT_POLICIES = "modipick,dynamic_greedy,oracle"
LTE_TMOBILE_UP = "lte_mahimahi_short/TMobile-LTE-short.up"  # shipped (modipick traces list)
LTE_PAYLOAD_BYTES = 80_000  # its median upload (56 ms) is then the paper's campus WiFi mean (57.9 ms)


@dataclass(frozen=True)
class Options:
    requests: int = 10_000
    seeds: tuple[int, ...] = (1,)
    policies: str = DEFAULT_POLICIES
    threshold_ms: float | None = None
    traces_dirs: tuple[Path, ...] = (SHIPPED_DIR,)  # the CLI passes paths.search_path(--traces-dir)
    return_model: str = "none"  # "learned": budgets carry a learned return-leg distribution


@dataclass(frozen=True)
class Recipe:
    name: str
    about: str
    build: Callable[[Options], Scenario]


def _table2_11() -> tuple:
    return select_models(load_models("table2"), first=11)


def _policies(opts: Options, extra: str = ""):
    text = opts.policies if not extra else f"{extra},{opts.policies}"
    defaults: dict[str, Any] = {} if opts.threshold_ms is None else {"threshold_ms": opts.threshold_ms}
    seen, unique = set(), []
    for spec in parse_policies(text, defaults):
        if spec.label not in seen:
            seen.add(spec.label)
            unique.append(spec)
    return tuple(unique)


def _scenario(opts: Options, name: str, models, network: str, leg: str, sla: str, extra: str = "",
              payload_bytes: int = DEFAULT_PAYLOAD_BYTES, **knobs: Any) -> Scenario:
    return Scenario(name, models, parse_network(network, payload_bytes=payload_bytes), leg,
                    parse_sla(sla), opts.requests, opts.seeds, _policies(opts, extra),
                    return_model=opts.return_model, **knobs)


def _drift_3x(o: Options) -> Drift:
    """NasNet Large 3x slower for the middle 30 % of the run (3000..5999 of 10,000)."""
    start = int(0.3 * o.requests)
    return Drift("NasNet Large", 3.0, start, max(int(0.6 * o.requests), start + 1))


# SLA ranges follow each network's round trip (2 x mean) and the pool's slowest useful model.
RECIPES: list[Recipe] = [
    Recipe("paper_campus_table2", "the paper's own setup: return leg = upload leg, campus WiFi, 11 models",
           lambda o: _scenario(o, "paper_campus_table2", _table2_11(), "campus_wifi", "mirror", "100:300:25")),
    Recipe("indep_campus_table2", "independent return leg, campus WiFi (normal), 11 models; SLA 150 is "
           "the headline point",
           lambda o: _scenario(o, "indep_campus_table2", _table2_11(), "campus_wifi", "independent",
                               "100:300:25", extra="static_greedy")),
    Recipe("indep_campus_gamma_table2", "as indep_campus_table2 with gamma-distributed legs (same mean/std)",
           lambda o: _scenario(o, "indep_campus_gamma_table2", _table2_11(), "campus_wifi:gamma",
                               "independent", "100:300:25")),
    Recipe("indep_home_table2", "independent return leg, home network, 11 models",
           lambda o: _scenario(o, "indep_home_table2", _table2_11(), "home", "independent", "150:450:25")),
    Recipe("indep_lte_table2", "independent return leg, LTE, 11 models",
           lambda o: _scenario(o, "indep_lte_table2", _table2_11(), "lte", "independent", "400:1400:100")),
    Recipe("indep_campus_c5", "independent return leg, campus WiFi, CPU pool profiles_cpu_c5.csv",
           lambda o: _scenario(o, "indep_campus_c5", load_models("profiles_cpu_c5"), "campus_wifi",
                               "independent", "100:1700:100")),
    Recipe("indep_home_c5", "independent return leg, home network, CPU pool",
           lambda o: _scenario(o, "indep_home_c5", load_models("profiles_cpu_c5"), "home", "independent",
                               "150:1800:150")),
    Recipe("indep_lte_c5", "independent return leg, LTE, CPU pool",
           lambda o: _scenario(o, "indep_lte_c5", load_models("profiles_cpu_c5"), "lte", "independent",
                               "400:2600:200")),
    Recipe("nasnet_fictional", "paper 4.4: 12 models incl. NasNet Fictional, 50 +- 25 ms, mirror",
           lambda o: _scenario(o, "nasnet_fictional", load_models("table2"), "artificial", "mirror",
                               "100:300:25", extra="related_accurate,related_random,pure_random")),
    Recipe("drift_campus_table2", "NasNet Large runs 3x slower for requests 3000..5999 (of 10,000), then "
           "recovers; profiles learn by EWMA (alpha 0.1); independent return leg; writes timeline.csv",
           lambda o: _scenario(o, "drift_campus_table2", _table2_11(), "campus_wifi", "independent",
                               "200,250,300", learning=Learning(alpha=0.1), drifts=(_drift_3x(o),))),
    Recipe("drift_probes_campus_table2", "as drift_campus_table2, with the Profiler re-probing every model "
           "every 50 requests (plain EWMA, alpha 0.1)",
           lambda o: _scenario(o, "drift_probes_campus_table2", _table2_11(), "campus_wifi", "independent",
                               "200,250,300", learning=Learning(alpha=0.1, reprobe_every=50),
                               drifts=(_drift_3x(o),))),
    Recipe("drift_detect_campus_table2", "as drift_probes_campus_table2, plus the Profiler's change "
           "detector (re-seed a profile after 3 consecutive outliers, modipick.core.changes)",
           lambda o: _scenario(o, "drift_detect_campus_table2", _table2_11(), "campus_wifi", "independent",
                               "200,250,300", learning=Learning(alpha=0.1, reprobe_every=50, detect_run=3),
                               drifts=(_drift_3x(o),))),
    Recipe("cold_none_campus_table2", "NasNet Large starts with no profile (first observation sets it); "
           "profiles learn by EWMA (alpha 0.1)",
           lambda o: _scenario(o, "cold_none_campus_table2", _table2_11(), "campus_wifi", "independent",
                               "150:300:50", learning=Learning(alpha=0.1), cold=(ColdStart("NasNet Large"),))),
    Recipe("cold_poor_campus_table2", "NasNet Large starts with a poor profile (5x its mean, 50 ms std), "
           "learning on, no re-probes: only exploration on user requests can discover it",
           lambda o: _scenario(o, "cold_poor_campus_table2", _table2_11(), "campus_wifi", "independent",
                               "150:300:50", learning=Learning(alpha=0.1),
                               cold=(ColdStart("NasNet Large", 5 * 112.61, 50.0),))),
    Recipe("cold_probed_campus_table2", "as cold_poor_campus_table2, with the Profiler re-probing every "
           "model every 50 requests and its change detector",
           lambda o: _scenario(o, "cold_probed_campus_table2", _table2_11(), "campus_wifi", "independent",
                               "150:300:50", learning=Learning(alpha=0.1, reprobe_every=50, detect_run=3),
                               cold=(ColdStart("NasNet Large", 5 * 112.61, 50.0),))),
    Recipe("trace_lte_tmobile_table2", "heavy-tailed real network: T-Mobile LTE uplink (Mahimahi trace) as 80 KB "
           "transfer times (median 56 ms, CV 133%), independent return leg, 11 models",
           lambda o: _scenario(o, "trace_lte_tmobile_table2", _table2_11(),
                               f"bwtrace:{resolve(LTE_TMOBILE_UP, o.traces_dirs)}", "independent", "100:400:25",
                               payload_bytes=LTE_PAYLOAD_BYTES)),
]


def recipe_names() -> list[str]:
    return [r.name for r in RECIPES]


def build(names: list[str] | None, opts: Options) -> list[Scenario]:
    chosen = RECIPES if not names else []
    for name in names or []:
        match = [r for r in RECIPES if r.name == name]
        if not match:
            raise SimInputError(f"--only {name!r}: unknown scenario (known: {', '.join(recipe_names())})")
        chosen.append(match[0])
    return [r.build(opts) for r in chosen]


