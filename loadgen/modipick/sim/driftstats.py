"""How fast a policy's choices follow a latency drift (the drift target), per request.

For a drift of model m over requests [start, end):
  pre_miss_share_pct     share of all SLA misses in [0, start) that were requests run on m
  miss_share_after_pct   the same share over [start + GRACE, end) (GRACE = 200 requests)
  met                    miss_share_after_pct <= pre_miss_share_pct (the drift target)
  misses_in_grace        misses on m in [start, start + GRACE): what the reaction cost
  last_miss_on_model     requests after `start` until the last miss on m during the drift (None: none)
  pre_usage_pct / usage_during_pct / usage_after_pct   share of requests run on m before, during,
                         and from `end + SETTLE` on (did the policy come back to it after recovery?)
  first_use_after_end    requests after `end` until m is chosen again (None: never)
"""

from __future__ import annotations

import numpy as np

GRACE = 200    # drift target: misses caused by the slowed model back to pre-drift level within 200 requests
SETTLE = 500   # usage after recovery is measured from end + SETTLE


def _share(on_model: np.ndarray, miss: np.ndarray) -> float:
    misses = int(miss.sum())
    return 100.0 * float((on_model & miss).sum()) / misses if misses else 0.0


def drift_metrics(choices: np.ndarray, met: np.ndarray, column: int, start: int, end: int) -> dict:
    n = len(choices)
    end = min(end, n)
    on_model = choices == column
    miss = ~met
    pre = _share(on_model[:start], miss[:start])
    after = _share(on_model[start + GRACE:end], miss[start + GRACE:end])
    missed_on = np.nonzero((on_model & miss)[start:end])[0]
    later = np.nonzero(on_model[end:])[0]
    return {
        "pre_miss_share_pct": pre,
        "miss_share_after_pct": after,
        "met": after <= pre + 1e-9,
        "misses_in_grace": int((on_model & miss)[start:min(start + GRACE, end)].sum()),
        "last_miss_on_model": int(missed_on[-1]) if len(missed_on) else None,
        "pre_usage_pct": 100.0 * float(on_model[:start].mean()) if start else 0.0,
        "usage_during_pct": 100.0 * float(on_model[start:end].mean()) if end > start else 0.0,
        "usage_after_pct": 100.0 * float(on_model[end + SETTLE:].mean()) if n > end + SETTLE else 0.0,
        "first_use_after_end": int(later[0]) if len(later) else None,
    }
