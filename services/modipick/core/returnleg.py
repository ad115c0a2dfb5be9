"""Learning the return leg instead of assuming it equals the upload (paper eq. 1's 2*T_input).

`ReturnLegModel` fits R = a + b*U online (exponentially weighted moments, so it follows drift)
and keeps the recent residuals R - (a + b*U) as an empirical distribution. That one model covers
both worlds: where the reply really mirrors the upload (the paper's simulator) it learns b = 1 with
residuals near 0; where the legs are independent it learns b ~ 0 and the residuals carry the whole
network distribution. Until `min_samples` legs were seen it answers with the paper's assumption.

`ReturnLegEstimate` is what one request's decision receives: the distribution of R given this
request's upload, as sorted quantile points with an O(log n) CDF.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True, slots=True)
class ReturnLegEstimate:
    offsets: tuple[float, ...]  # sorted residual sample points
    centre: float               # a + b * upload

    @classmethod
    def exact(cls, value_ms: float) -> "ReturnLegEstimate":
        return cls((0.0,), value_ms)

    def cdf(self, x_ms: float) -> float:
        """P(R <= x)."""
        n = len(self.offsets)
        return bisect_right(self.offsets, x_ms - self.centre) / n

    def quantile(self, q: float) -> float:
        n = len(self.offsets)
        return self.centre + self.offsets[min(n - 1, max(0, int(q * n)))]

    @property
    def mean(self) -> float:
        return self.centre + sum(self.offsets) / len(self.offsets)


class ReturnLegModel:
    def __init__(self, *, alpha: float = 0.02, window: int = 256, min_samples: int = 20,
                 resort_every: int = 16) -> None:
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")
        self.alpha = alpha
        self.window = window
        self.min_samples = min_samples
        self.resort_every = resort_every
        self.samples = 0
        self._mu_u = self._mu_r = self._var_u = self._cov = 0.0
        self._residuals: list[float] = []
        self._next = 0
        self._sorted: tuple[float, ...] = (0.0,)
        self._dirty = 0

    @property
    def slope(self) -> float:
        if self.samples < 2 or self._var_u <= 1e-9:
            return 1.0 if self.samples < self.min_samples else 0.0
        return self._cov / self._var_u

    @property
    def intercept(self) -> float:
        return self._mu_r - self.slope * self._mu_u

    def observe(self, upload_ms: float, return_ms: float) -> None:
        a = self.alpha if self.samples >= int(1 / self.alpha) else 1.0 / (self.samples + 1)
        if self.samples == 0:
            self._mu_u, self._mu_r = upload_ms, return_ms
        else:
            du, dr = upload_ms - self._mu_u, return_ms - self._mu_r
            self._mu_u += a * du
            self._mu_r += a * dr
            self._var_u = (1 - a) * (self._var_u + a * du * du)
            self._cov = (1 - a) * (self._cov + a * du * dr)
        self.samples += 1
        residual = return_ms - (self.intercept + self.slope * upload_ms)
        if len(self._residuals) < self.window:
            self._residuals.append(residual)
        else:
            self._residuals[self._next] = residual
            self._next = (self._next + 1) % self.window
        self._dirty += 1
        if self._dirty >= self.resort_every or self.samples <= self.min_samples:
            self._sorted = tuple(sorted(self._residuals))
            self._dirty = 0

    def estimate(self, upload_ms: float) -> ReturnLegEstimate:
        if self.samples < self.min_samples:
            return ReturnLegEstimate.exact(upload_ms)  # the paper's assumption
        return ReturnLegEstimate(self._sorted, self.intercept + self.slope * upload_ms)


def empirical(values: Sequence[float]) -> ReturnLegEstimate:
    """A fixed distribution from samples (e.g. a network profile known in advance)."""
    if not values:
        raise ValueError("need at least one value")
    return ReturnLegEstimate(tuple(sorted(values)), 0.0)
