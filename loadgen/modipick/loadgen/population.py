"""Client populations: many emulated phones in one run instead of one.

Each client has its own id ("CLASS/NUMBER": the network class is the part before the "/", as the
Selector groups return legs), its own network class (one of the run's networks), its own place in
that network's trace (a time offset for link traces, a row offset for per-request traces and
parametric draws) and a Zipf-distributed share of the requests: the k-th most active client sends
in proportion to 1 / k**s (s = 0: all alike). Which client is the k-th most active is random, so
activity does not follow the ids or the classes.

Everything is drawn from an injected numpy Generator: the same seed gives the same population and
the same request -> client schedule, for every policy compared.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from modipick.loadgen.traces.legs import LegModel, RequestLegs, TraceLegs

MAX_CLIENTS = 10_000_000
INDEX_SPAN = 1 << 20  # row offsets of networks without rows of their own (parametric draws)
DIRECT_CLASS = "direct"


@dataclass(frozen=True, slots=True)
class Client:
    number: int
    network_class: str
    network: LegModel | None      # None: direct mode, no legs
    offset_s: float               # where in its network's trace this client's time starts
    index_offset: int             # where in its network's rows / draws this client's requests start
    weight: float                 # share of the run's requests (sums to 1 over the population)

    def client_id(self, tag: str = "") -> str:
        """"CLASS/NUMBER"; with a tag, "CLASS.TAG/NUMBER": a fresh class and client per run."""
        return f"{self.network_class}.{tag}/{self.number:06d}" if tag else f"{self.network_class}/{self.number:06d}"


def class_name(network: LegModel | None) -> str:
    """A network's name as a client class: no "/" (it ends the class) and no spaces."""
    if network is None:
        return DIRECT_CLASS
    return re.sub(r"[^A-Za-z0-9_.:-]+", "-", network.name).strip("-") or "network"


def zipf_weights(n: int, s: float) -> np.ndarray:
    """Activity by rank: rank k (1-based) gets 1 / k**s, normalised."""
    if n < 1:
        raise ValueError(f"a population needs at least 1 client, got {n}")
    if not (np.isfinite(s) and s >= 0):
        raise ValueError(f"the Zipf exponent must be >= 0, got {s!r}")
    ranks = np.arange(1, n + 1, dtype=np.float64)
    weights = ranks ** -float(s)
    return weights / weights.sum()


def _span(network: LegModel | None) -> tuple[float, int]:
    """(seconds, rows) a client's offset is drawn within."""
    if isinstance(network, TraceLegs):
        up = network.up
        period_s = up.period_ms / 1000.0 if hasattr(up, "period_ms") else float(up.period_s)
        return period_s, INDEX_SPAN
    if isinstance(network, RequestLegs):
        return 0.0, len(network.times.upload_ms)
    return 0.0, INDEX_SPAN


@dataclass(frozen=True)
class Population:
    clients: tuple[Client, ...]
    zipf_s: float

    @classmethod
    def build(cls, n: int, networks: list[LegModel | None], *, zipf_s: float,
              rng: np.random.Generator) -> "Population":
        """n clients spread evenly over the networks' classes (in random order)."""
        if not 1 <= n <= MAX_CLIENTS:
            raise ValueError(f"clients must be in [1, {MAX_CLIENTS}], got {n}")
        if not networks:
            raise ValueError("a population needs at least one network (None for direct mode)")
        names = [class_name(network) for network in networks]
        if len(set(names)) != len(names):
            raise ValueError(f"two networks share the class name {names}: rename a trace")
        weights = zipf_weights(n, zipf_s)[rng.permutation(n)]  # rank -> a random client
        classes = rng.permutation(np.arange(n) % len(networks))
        spans = [_span(network) for network in networks]
        u_time, u_rows = rng.random(n), rng.random(n)
        clients = []
        for number in range(n):
            k = int(classes[number])
            span_s, rows = spans[k]
            clients.append(Client(number, names[k], networks[k], float(u_time[number] * span_s),
                                  int(u_rows[number] * rows), float(weights[number])))
        return cls(tuple(clients), float(zipf_s))

    def __len__(self) -> int:
        return len(self.clients)

    def schedule(self, requests: int, rng: np.random.Generator) -> "ClientSchedule":
        """Which client sends each of `requests` requests (drawn by activity), and how many that
        client sent before it (its position in its own segment of the trace)."""
        weights = np.fromiter((c.weight for c in self.clients), dtype=np.float64, count=len(self.clients))
        owner = rng.choice(len(self.clients), size=requests, p=weights / weights.sum())
        seq = np.zeros(requests, dtype=np.int64)
        seen = np.zeros(len(self.clients), dtype=np.int64)
        for i, k in enumerate(owner.tolist()):
            seq[i] = seen[k]
            seen[k] += 1
        return ClientSchedule(self, owner, seq)


@dataclass(frozen=True, eq=False)
class ClientSchedule:
    population: Population
    owner: np.ndarray   # client number of request i
    seq: np.ndarray     # how many requests that client sent before request i
    tag: str = ""       # makes ids (and classes) fresh per run; "" keeps them across runs

    def with_tag(self, tag: str) -> "ClientSchedule":
        return ClientSchedule(self.population, self.owner, self.seq, tag)

    def client(self, i: int) -> Client:
        return self.population.clients[int(self.owner[i])]

    def legs_at(self, i: int, at_s: float) -> tuple[int, float]:
        """(row index, trace time) request i of its client uses: the client's own segment."""
        client = self.client(i)
        return client.index_offset + int(self.seq[i]), client.offset_s + at_s

    def client_id(self, i: int) -> str:
        return self.client(i).client_id(self.tag)
