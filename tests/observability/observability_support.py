"""Scraping /metrics pages for the observability tests (a plain module: no conftest name clash)."""

from __future__ import annotations

import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field


@dataclass
class Scrape:
    """One /metrics page: sample name -> [(labels, value)]."""

    samples: dict[str, list[tuple[dict[str, str], float]]]
    types: dict[str, str] = field(default_factory=dict)

    def value(self, name: str, **labels: str) -> float:
        return sum(v for l, v in self.samples.get(name, []) if all(l.get(k) == x for k, x in labels.items()))



def scrape(url: str) -> Scrape:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=5) as reply:
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = reply.read().decode()
    samples: dict[str, list] = defaultdict(list)
    types = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            samples[s.name].append((dict(s.labels), s.value))
    return Scrape(dict(samples), types)


def delta(after: Scrape, before: Scrape, name: str, **labels: str) -> float:
    return after.value(name, **labels) - before.value(name, **labels)
