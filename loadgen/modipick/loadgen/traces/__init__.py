"""Network sources -> per-request legs. `open_network(spec, options)` accepts:

  campus_wifi | home | lte | artificial | perfect   a named profile (the paper's networks.csv)
  param:MEAN,STD[,normal|lognormal]                 a parametric one-way time for 330 KB
  cv:MEAN,CV[,normal|lognormal]                     same, by coefficient of variation (0.5 = 50 %)
  PATH                                              a trace file, format detected (or --trace-format);
                                                    a relative PATH not found as given is looked up
                                                    in `traces_dirs` (then the shipped traces, see
                                                    `modipick traces list`):
      X.up / X.down / X (with both siblings)        Mahimahi delivery opportunities (up and down)
      one integer per line                          a single Mahimahi file, used for both directions
      CSV with an upload_ms / network_ms header     per-request network times
      "time<TAB>Mbps" or "t,BytesPerSecond"         throughput series, used for both directions
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modipick.loadgen.errors import LoadgenInputError
from modipick.loadgen.traces.catalog import SHIPPED_DIR
from modipick.loadgen.traces.legs import (LegModel, LegStats, ParametricLegs, RequestLegs, Sizes, TraceLegs,
                                          rescale_to_median, upload_stats)
from modipick.loadgen.traces.mahimahi import looks_like_mahimahi, mahimahi_pair, read_mahimahi
from modipick.loadgen.traces.profiles import (REFERENCE_BYTES, NetworkProfile, cv_profile, cv_sweep,
                                              named_profiles)
from modipick.loadgen.traces.requests_csv import looks_like_request_csv, read_request_csv
from modipick.loadgen.traces.schedule import DeliverySchedule
from modipick.loadgen.traces.throughput import RATE_UNITS, ThroughputSeries, read_throughput

TRACE_FORMATS = ("auto", "mahimahi", "throughput", "requests")


@dataclass(frozen=True, slots=True)
class NetworkOptions:
    sizes: Sizes = Sizes()
    seed: int = 0
    trace_format: str = "auto"
    rate_unit: str = "auto"
    anchor: str = "auto"
    offset_s: float = 0.0
    rescale_median_ms: float | None = None
    traces_dirs: tuple[Path, ...] = (SHIPPED_DIR,)  # relative trace paths not found as given: looked up here


def open_network(spec: str, options: NetworkOptions = NetworkOptions()) -> LegModel:
    model = _open(spec, options)
    if options.rescale_median_ms is not None:
        try:
            model = rescale_to_median(model, options.rescale_median_ms)
        except ValueError as exc:
            raise LoadgenInputError(spec, str(exc)) from None
    return model


def profile_legs(profile: NetworkProfile, options: NetworkOptions = NetworkOptions()) -> LegModel:
    model: LegModel = ParametricLegs(profile, options.sizes, options.seed)
    if options.rescale_median_ms is not None:
        model = rescale_to_median(model, options.rescale_median_ms)
    return model


def _open(spec: str, options: NetworkOptions) -> LegModel:
    named = named_profiles()
    if spec in named:
        return ParametricLegs(named[spec], options.sizes, options.seed)
    for prefix in ("param:", "cv:"):
        if spec.startswith(prefix):
            return ParametricLegs(_parse_parametric(spec, prefix), options.sizes, options.seed)
    path = _find(Path(spec), options.traces_dirs)
    if path is None:
        known = ", ".join(sorted(named))
        where = f" (nor under {', '.join(map(str, options.traces_dirs))})" if options.traces_dirs else ""
        raise LoadgenInputError(spec, f"no such trace file{where}, and not a named network ({known}), "
                                      "param:MEAN,STD or cv:MEAN,CV")
    return _open_file(path, options)


def _find(path: Path, traces_dirs: tuple[Path, ...]) -> Path | None:
    candidates = [path] + ([] if path.is_absolute() else [folder / path for folder in traces_dirs])
    for candidate in candidates:
        if candidate.exists() or mahimahi_pair(candidate) is not None:
            return candidate
    return None


def _parse_parametric(spec: str, prefix: str) -> NetworkProfile:
    fields = spec[len(prefix):].split(",")
    try:
        if len(fields) not in (2, 3):
            raise ValueError(f"expected {prefix}MEAN,{'STD' if prefix == 'param:' else 'CV'}[,DIST]")
        mean, second = float(fields[0]), float(fields[1])
        dist = fields[2] if len(fields) == 3 else "normal"
        if prefix == "cv:":
            return cv_profile(mean, second, dist)
        return NetworkProfile(spec, mean, second, dist)
    except ValueError as exc:
        raise LoadgenInputError(spec, str(exc).replace("could not convert string to float: ", "not a number: "))\
            from None


def _open_file(path: Path, options: NetworkOptions) -> LegModel:
    fmt = options.trace_format
    if fmt not in TRACE_FORMATS:
        raise LoadgenInputError(str(path), f"unknown trace format {fmt!r}; known: {', '.join(TRACE_FORMATS)}")
    pair = mahimahi_pair(path)
    if fmt == "auto":
        if pair is not None:
            fmt = "mahimahi"
        elif path.is_file() and looks_like_request_csv(path):
            fmt = "requests"
        elif path.is_file() and looks_like_mahimahi(path):
            fmt = "mahimahi"
        else:
            fmt = "throughput"
    name = path.name if pair is None else pair[0].with_suffix("").name
    if fmt == "requests":
        return RequestLegs(name, read_request_csv(path), options.sizes)
    if fmt == "mahimahi":
        if pair is not None:
            up, down = read_mahimahi(pair[0]), read_mahimahi(pair[1])
        else:
            up = down = read_mahimahi(path)
        return TraceLegs(name, up, down, options.sizes, options.offset_s)
    try:
        series = read_throughput(path, unit=options.rate_unit, anchor=options.anchor)
    except ValueError as exc:
        if isinstance(exc, LoadgenInputError):
            raise
        raise LoadgenInputError(str(path), str(exc)) from None
    return TraceLegs(name, series, series, options.sizes, options.offset_s)


__all__ = ["DeliverySchedule", "LegModel", "LegStats", "NetworkOptions", "NetworkProfile", "ParametricLegs",
           "RATE_UNITS", "REFERENCE_BYTES", "RequestLegs", "Sizes", "ThroughputSeries", "TRACE_FORMATS",
           "TraceLegs", "cv_profile", "cv_sweep", "named_profiles", "open_network", "profile_legs",
           "read_mahimahi", "read_request_csv", "read_throughput", "rescale_to_median", "upload_stats"]
