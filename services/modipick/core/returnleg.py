"""Learning the return leg instead of assuming it equals the upload (paper eq. 1's 2*T_input).

`ReturnLegModel` fits, online,

    log R_i = a + b * log U_i + c * log R_last + e_i      (in ms instead with log_scale=False)

with exponentially weighted moments (so it follows drift), and keeps the recent residuals e as an
empirical distribution. The two regressors cover the worlds the Selector meets:
  * the reply really mirrors the upload (the paper's simulator): b = 1, c = 0, residuals ~ 0;
  * independent legs (a reply is its own draw from the network): b ~ 0, c ~ 0, and the residuals
    carry the whole network distribution;
  * a network whose state persists from one request to the next (real traces: a bad spell lasts
    seconds): c near 1, so the last return leg the client reported re-centres the distribution and
    the residuals shrink to the request-to-request change.
Logs, because network times are heavy-tailed and multiplicative (a fit in ms is dominated by the
rare multi-second spells). b and c are shrunk toward 0 by their standard error (positive-part
James-Stein), so independent legs get the plain marginal rather than a noisy regression; c is kept
in [0, 1]. R_last is the leg the *decision* knew (`ReturnLegEstimate.basis_ms`, handed back to
`observe`), so late reports fit c on the staleness predictions really have.
Until `min_samples` legs were seen it answers with its `prior`: "mirror" (the
paper's R = T_input) or "uploads" (R drawn like the recent uploads, fed by `observe_upload`, which
needs no outcome reports: right for independent legs, wrong where the reply mirrors the upload).

One model per client (or network class): the Selector feeds it from ReportOutcome (the client's
measured round trip minus what the server accounts for, see docs/policy.md) and the upload it
derived from the request's deadline.

Estimates stay inside what was observed, and no source can steer a model it shares with others:
  * the estimate's distribution is clamped to the range of legs in the window (a client's own model
    may reach `range_margin` of that range beyond it: a bad spell can bring a leg longer than any
    in the window), and the upload it is asked about to the range of uploads in the window (no
    extrapolation of the regression);
  * a model shared by many sources (a network class) is given `source_cap`: one source (client)
    holds at most that many samples of the window (more are ignored and counted), and the ranges
    above leave out the `source_cap` lowest and highest values, so whatever one source reported,
    the estimate stays within the other sources' legs; it answers only with `min_sources` sources;
  * the fit's moments take each point winsorized into a robust band of the window (median +-
    `winsor_k` x the IQR's sigma), so a few far points cannot set the slope, and the slope on the
    upload is used only when the window's uploads spread at least `min_upload_spread`.

`ReturnLegEstimate` is what one request's decision receives: the distribution of R given this
request's upload (and the last reported return leg), as sorted offsets around a centre, with an
O(log n) CDF.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True, slots=True)
class ReturnLegEstimate:
    """R = centre + offset (offset drawn from `offsets`), or with `log_scale`, log R = centre + offset."""

    offsets: tuple[float, ...]  # sorted residual sample points
    centre: float               # a + b * upload + c * last return (their logs with log_scale)
    basis_ms: float | None = None  # the last reported return leg this estimate used (give it back to observe)
    log_scale: bool = False

    @classmethod
    def exact(cls, value_ms: float) -> "ReturnLegEstimate":
        return cls((0.0,), value_ms)

    def cdf(self, x_ms: float) -> float:
        """P(R <= x)."""
        if self.log_scale:
            if x_ms <= 0.0:
                return 0.0
            x_ms = math.log(x_ms)
        return bisect_right(self.offsets, x_ms - self.centre) / len(self.offsets)

    def quantile(self, q: float) -> float:
        n = len(self.offsets)
        value = self.centre + self.offsets[min(n - 1, max(0, int(q * n)))]
        return math.exp(value) if self.log_scale else value

    @property
    def mean(self) -> float:
        if self.log_scale:
            return sum(math.exp(self.centre + o) for o in self.offsets) / len(self.offsets)
        return self.centre + sum(self.offsets) / len(self.offsets)


class ReturnLegModel:
    def __init__(self, *, alpha: float = 0.01, window: int = 256, min_samples: int = 20,
                 resort_every: int = 16, autoregressive: bool = True, log_scale: bool = True,
                 shrink: bool = True, prior: str = "mirror", source_cap: int = 0, min_sources: int = 1,
                 winsor_k: float = 4.0, min_upload_spread: float | None = None,
                 range_margin: float = 0.5) -> None:
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")
        if window < 1 or min_samples < 1 or resort_every < 1:
            raise ValueError("window, min_samples and resort_every must be >= 1")
        if prior not in PRIORS:
            raise ValueError(f"prior must be one of {', '.join(PRIORS)}, got {prior!r}")
        if source_cap < 0 or min_sources < 1 or 2 * source_cap >= window:
            raise ValueError(f"need source_cap >= 0 with 2 * source_cap < window, and min_sources >= 1; got "
                             f"source_cap={source_cap!r}, window={window!r}, min_sources={min_sources!r}")
        if not winsor_k > 0:
            raise ValueError(f"winsor_k must be > 0, got {winsor_k!r}")
        if not 0.0 <= range_margin <= 1.0:
            raise ValueError(f"range_margin must be in [0, 1], got {range_margin!r}")
        self.prior = prior
        self.source_cap = source_cap
        self.min_sources = min_sources
        self.winsor_k = winsor_k
        # how far beyond the observed legs an estimate may reach, as a share of their (fit-unit)
        # range: a client's own model in a bad spell may see a leg longer than any in its window;
        # a model shared by sources keeps 0, inside the legs the others saw
        self._tracks_sources = source_cap > 0 or min_sources > 1
        self.range_margin = 0.0 if self._tracks_sources else range_margin
        # below this spread of uploads (in the fit's units: log ms, or ms) the slope on the upload is 0
        self.min_upload_spread = (min_upload_spread if min_upload_spread is not None
                                  else (0.1 if log_scale else 1.0))
        self.alpha = alpha
        self.window = window
        self.min_samples = min_samples
        self.resort_every = resort_every
        self.autoregressive = autoregressive
        self.log_scale = log_scale
        self.shrink = shrink
        self._n_eff = 2.0 / alpha - 1.0  # effective sample size of the EW moments
        self._s_ee = 0.0  # EW mean squared residual
        self.samples = 0
        self.last_return_ms: float | None = None
        # EW means of U, P (= previous R), R and the (co)variances the regression needs.
        self._mu_u = self._mu_p = self._mu_r = 0.0
        self._s_uu = self._s_pp = self._s_up = self._s_ur = self._s_pr = 0.0
        self._a, self._b, self._c = 0.0, 1.0, 0.0
        self._residuals: list[float] = []
        self._next = 0
        self._sorted: tuple[float, ...] = (0.0,)
        self._dirty = 0
        self._uploads: list[float] = []
        self._next_upload = 0
        self._uploads_sorted: tuple[float, ...] = ()
        self._uploads_dirty = 0
        # the window's observed legs and uploads (fit units), beside the residuals (same slots)
        self._legs = array("d")
        self._ups = array("d")
        self._sources: list[str] = []
        self._source_counts: dict[str, int] = {}
        self._leg_range: tuple[float, float] | None = None   # trimmed by source_cap
        self._up_range: tuple[float, float] | None = None
        self._band: tuple[float, float] | None = None        # winsorizing band of legs (and last legs)
        self._up_band: tuple[float, float] | None = None
        self._slope_trusted = False
        self.ignored = 0  # samples over a source's cap, not learned

    @property
    def slope(self) -> float:
        """b: how much of the upload's deviation shows up in the reply."""
        return self._b

    @property
    def persistence(self) -> float:
        """c: how much of the last return leg carries over to the next."""
        return self._c

    @property
    def intercept(self) -> float:
        return self._a

    @property
    def sources(self) -> int:
        """Distinct sources with samples in the window (counted where sources are tracked)."""
        return len(self._source_counts)

    @property
    def ready(self) -> bool:
        """Learned enough to answer: `min_samples` legs, from `min_sources` sources, and more than
        2 x `source_cap` of them in the window (so the trimmed range exists)."""
        return (self.samples >= self.min_samples and self._leg_range is not None
                and (not self._tracks_sources or len(self._source_counts) >= self.min_sources))

    def observed_range_ms(self) -> tuple[float, float] | None:
        """The (trimmed) range of return legs the estimate is clamped to, in ms."""
        if self._leg_range is None:
            return None
        lo, hi = self._leg_range
        return (math.exp(lo), math.exp(hi)) if self.log_scale else (lo, hi)

    def _fit(self) -> None:
        s_uu, s_pp, s_up, s_ur, s_pr = self._s_uu, self._s_pp, self._s_up, self._s_ur, self._s_pr
        b = c = 0.0
        det = s_uu * s_pp - s_up * s_up
        var_b = var_c = 0.0  # squared standard errors, for the shrinkage below
        noise = self._s_ee / self._n_eff
        if not self._slope_trusted:
            s_uu = s_up = s_ur = 0.0  # too little spread of uploads to tell a slope from noise
            det = 0.0
        if self.autoregressive and det > 1e-9 * (s_uu * s_pp + 1e-12):
            b = (s_ur * s_pp - s_pr * s_up) / det
            c = (s_pr * s_uu - s_ur * s_up) / det
            var_b, var_c = noise * s_pp / det, noise * s_uu / det
            if not 0.0 <= c <= 1.0:
                c = min(1.0, max(0.0, c))
                b = (s_ur - c * s_up) / s_uu
        elif s_uu > 1e-9:
            b = s_ur / s_uu
            var_b = noise / s_uu
        elif self.autoregressive and s_pp > 1e-9:
            c = min(1.0, max(0.0, s_pr / s_pp))
            var_c = noise / s_pp
        if self.shrink:
            # positive-part James-Stein: a coefficient within its noise of 0 is 0 (independent legs
            # then get exactly the marginal distribution); a clear one (b = 1 for mirrored legs,
            # c ~ 1 for persistent networks) is kept.
            b *= max(0.0, 1.0 - var_b / (b * b)) if b else 0.0
            c *= max(0.0, 1.0 - var_c / (c * c)) if c else 0.0
        self._b, self._c = b, c
        self._a = self._mu_r - b * self._mu_u - c * self._mu_p

    def observe(self, upload_ms: float, return_ms: float, basis_ms: float | None = None,
                source: str = "") -> None:
        """One request's legs. `basis_ms`: the `basis_ms` of the estimate its decision used, so c is
        fitted on the staleness the predictions really have (reports arrive late, clients pipeline);
        None: the last leg observed before this one (strictly sequential requests). `source`: who
        reported it (the client), for `source_cap` and `min_sources`."""
        if self.source_cap and self._source_counts.get(source, 0) >= self.source_cap:
            self.ignored += 1
            return
        if basis_ms is not None:
            prev = basis_ms
        elif self.last_return_ms is not None:
            prev = self.last_return_ms
        else:
            prev = return_ms
        self.last_return_ms = return_ms
        t = _log if self.log_scale else float
        upload, leg, prev = t(upload_ms), t(return_ms), t(prev)
        raw_prev = prev
        if self._band is not None:  # bounded influence of any one point on the fit
            upload_ms, return_ms = _clamp(upload, self._up_band), _clamp(leg, self._band)
            prev = _clamp(prev, self._band)
        else:
            upload_ms, return_ms = upload, leg
        n = self.samples
        a = self.alpha if n >= int(1 / self.alpha) else 1.0 / (n + 1)
        if n == 0:
            self._mu_u, self._mu_p, self._mu_r = upload_ms, prev, return_ms
        else:
            du, dp, dr = upload_ms - self._mu_u, prev - self._mu_p, return_ms - self._mu_r
            self._mu_u += a * du
            self._mu_p += a * dp
            self._mu_r += a * dr
            k = 1.0 - a
            self._s_uu = k * (self._s_uu + a * du * du)
            self._s_pp = k * (self._s_pp + a * dp * dp)
            self._s_up = k * (self._s_up + a * du * dp)
            self._s_ur = k * (self._s_ur + a * du * dr)
            self._s_pr = k * (self._s_pr + a * dp * dr)
        self.samples = n + 1
        self._fit()
        fitted = self._a + self._b * upload_ms + self._c * prev
        self._s_ee += a * ((return_ms - fitted) ** 2 - self._s_ee)
        # the residual of the point as observed: a real network's tail stays in the distribution
        self._push(leg - (self._a + self._b * upload + self._c * raw_prev), leg, upload, source)
        self._dirty += 1
        if self._dirty >= self.resort_every or self.samples <= self.min_samples or self._leg_range is None:
            self._resort()
            self._dirty = 0

    def _push(self, residual: float, leg: float, upload: float, source: str) -> None:
        if len(self._residuals) < self.window:
            self._residuals.append(residual)
            self._legs.append(leg)
            self._ups.append(upload)
            if self._tracks_sources:
                self._sources.append(source)
                self._source_counts[source] = self._source_counts.get(source, 0) + 1
            return
        i = self._next
        self._residuals[i], self._legs[i], self._ups[i] = residual, leg, upload
        if self._tracks_sources:
            gone = self._sources[i]
            left = self._source_counts[gone] - 1
            if left:
                self._source_counts[gone] = left
            else:
                del self._source_counts[gone]
            self._sources[i] = source
            self._source_counts[source] = self._source_counts.get(source, 0) + 1
        self._next = (i + 1) % self.window

    def _resort(self) -> None:
        self._sorted = tuple(sorted(self._residuals))
        legs, ups = sorted(self._legs), sorted(self._ups)
        n, trim = len(legs), self.source_cap
        if n <= 2 * trim:
            self._leg_range = self._up_range = None
            return
        lo, hi = legs[trim], legs[n - 1 - trim]
        margin = self.range_margin * (hi - lo)
        self._leg_range = (lo - margin, hi + margin)
        self._up_range = (ups[trim], ups[n - 1 - trim])
        self._slope_trusted = self._up_range[1] - self._up_range[0] >= self.min_upload_spread
        if n >= self.min_samples:
            self._band, self._up_band = self._robust_band(legs), self._robust_band(ups)

    def _robust_band(self, values: list[float]) -> tuple[float, float]:
        """median +- winsor_k x sigma, sigma from the interquartile range (with a floor of 5 %)."""
        n = len(values)
        median = values[n // 2]
        sigma = (values[(3 * n) // 4] - values[n // 4]) / 1.349
        sigma = max(sigma, 0.05 if self.log_scale else 0.05 * abs(median) + 0.05)
        return median - self.winsor_k * sigma, median + self.winsor_k * sigma

    def observe_upload(self, upload_ms: float) -> None:
        """Every request's upload leg (known at once, no report needed), for the "uploads" prior."""
        if self.prior != "uploads":
            return
        if len(self._uploads) < self.window:
            self._uploads.append(upload_ms)
        else:
            self._uploads[self._next_upload] = upload_ms
            self._next_upload = (self._next_upload + 1) % self.window
        self._uploads_dirty += 1
        if self._uploads_dirty >= self.resort_every or len(self._uploads) <= self.min_samples:
            self._uploads_sorted = tuple(sorted(self._uploads))
            self._uploads_dirty = 0

    def take_uploads(self, other: "ReturnLegModel") -> None:
        """The uploads `other` counted for the "uploads" prior, as this model's (it replaces `other`)."""
        self._uploads, self._next_upload = list(other._uploads), other._next_upload
        self._uploads_sorted, self._uploads_dirty = other._uploads_sorted, other._uploads_dirty

    def estimate(self, upload_ms: float) -> ReturnLegEstimate:
        if not self.ready:
            if self.prior == "uploads" and len(self._uploads_sorted) >= self.min_samples:
                return ReturnLegEstimate(self._uploads_sorted, 0.0)
            return ReturnLegEstimate.exact(upload_ms)  # the paper's assumption
        assert self._leg_range is not None and self._up_range is not None
        lo, hi = self._leg_range
        last = self.last_return_ms
        t = _log if self.log_scale else float
        prev = self._mu_p if last is None else t(last)
        centre = self._a + self._b * _clamp(t(upload_ms), self._up_range) + self._c * _clamp(prev, self._leg_range)
        offsets = self._sorted
        n = len(offsets)
        below, above = bisect_left(offsets, lo - centre), bisect_right(offsets, hi - centre)
        if below or above < n:  # what lies outside the observed legs is put on their edge
            offsets = (lo - centre,) * below + offsets[below:above] + (hi - centre,) * (n - above)
        return ReturnLegEstimate(offsets, centre, last, self.log_scale)


PRIORS = ("mirror", "uploads")
LOG_FLOOR_MS = 0.01  # log-scale fits take log(max(x, this)): a 0 ms leg is not -inf


def _log(x_ms: float) -> float:
    return math.log(x_ms if x_ms > LOG_FLOOR_MS else LOG_FLOOR_MS)


def _clamp(x: float, bounds: tuple[float, float] | None) -> float:
    if bounds is None:
        return x
    lo, hi = bounds
    return lo if x < lo else hi if x > hi else x


def empirical(values: Sequence[float]) -> ReturnLegEstimate:
    """A fixed distribution from samples (e.g. a network profile known in advance)."""
    if not values:
        raise ValueError("need at least one value")
    return ReturnLegEstimate(tuple(sorted(values)), 0.0)
