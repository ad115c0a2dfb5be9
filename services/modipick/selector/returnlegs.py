"""Return legs learned per client (modipick.core.returnleg.ReturnLegModel), for `risk_aware`.

One model per `client_id` (bounded LRU: the least recently seen client is forgotten first) and one
shared model per *network class*, fed by every report of its clients. The class of a client id is
the part before its first "/" ("lte/device-42" -> "lte"); ids without one, and requests without a
client id, belong to the class "default". A decision uses the client's own model once it has
`min_samples` reported legs, before that its class's model if that is ready, else the client's
prior (`mirror`: the paper's R = T_input, or `uploads`).

A class model decides for clients that never reported, so no one client may steer it: each client
holds at most `class_share` of its window (further reports teach only the client's own model), the
class answers only once `class_min_clients` clients reported, and its estimates stay inside the
legs the other clients observed (modipick.core.returnleg: the cap, a trimmed range, winsorized
fitting). A client moves its own model freely: that model decides for it alone.

Sharing (`sharing`, `--return-leg-sharing`): with "store" every Selector replica learns from the
reports that reached *any* replica. The replica a report reached derives the leg and forwards it
with the report; the Profiler appends it to one stream in the store, and each replica feeds the
stream to its book in stream order on every profile refresh (modipick.selector.leg_stream). Such a
book (`shared=True`) is changed by the stream alone: `estimate` only reads its models (it creates
none and does not touch the LRU order), so replicas that read the same stream hold the same models
and decide alike, whichever replica a client reaches. Before a model has `min_samples` legs the
prior answers from a local book (the `uploads` prior's uploads are this replica's). With "local"
(the default without a Redis store) a replica learns only from the reports that reach it (see
docs/policy.md, "Live"). "partitioned" (the default with a Redis store) keeps each client's model
in Redis instead, read with its decisions (modipick.selector.client_legs, docs/scaling.md).
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from modipick.core.returnleg import PRIORS, ReturnLegEstimate, ReturnLegModel

if TYPE_CHECKING:
    from modipick.stores.base import ReturnLegSample

DEFAULT_CLASS = "default"
MODES = ("learned", "mirror", "fixed")
SHARING = ("auto", "store", "local", "partitioned")


@dataclass(frozen=True, slots=True)
class ReturnLegSettings:
    mode: str = "learned"        # learned | mirror (R = upload for every policy) | fixed (R = fixed_ms)
    fixed_ms: float | None = None
    prior: str = "mirror"        # before min_samples reports: mirror | uploads
    clients: int = 2_000         # per-client models kept (LRU; ~13 KB each)
    classes: int = 64            # network classes kept (beyond: the default class)
    alpha: float = 0.01
    window: int = 256
    min_samples: int = 20
    sharing: str = "auto"        # partitioned | store (the Profiler's stream) | local | auto (partitioned on Redis)
    class_share: float = 0.05    # of a class model's window, at most this share from any one client
    class_min_clients: int = 3   # clients a class model needs before it decides for others
    max_leg_slas: float = 10.0   # a reported leg longer than this many SLAs is refused (not learned)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"return-leg mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.mode == "fixed" and not (self.fixed_ms is not None and math.isfinite(self.fixed_ms)
                                         and self.fixed_ms >= 0):
            raise ValueError(f"a fixed return leg needs fixed_ms >= 0, got {self.fixed_ms!r}")
        if self.prior not in PRIORS:
            raise ValueError(f"return-leg prior must be one of {', '.join(PRIORS)}, got {self.prior!r}")
        if self.sharing not in SHARING:
            raise ValueError(f"return-leg sharing must be one of {', '.join(SHARING)}, got {self.sharing!r}")
        if self.clients < 1 or self.classes < 1:
            raise ValueError("return-leg model capacities must be >= 1")
        if not 0.0 < self.class_share < 0.5:
            raise ValueError(f"class_share must be in (0, 0.5), got {self.class_share!r}")
        if not (math.isfinite(self.max_leg_slas) and self.max_leg_slas > 0):
            raise ValueError(f"max_leg_slas must be a number > 0, got {self.max_leg_slas!r}")
        if self.class_min_clients < 1:
            raise ValueError(f"class_min_clients must be >= 1, got {self.class_min_clients!r}")

    @property
    def class_cap(self) -> int:
        """Samples one client may hold in a class model's window."""
        return max(1, int(self.class_share * self.window))


def parse_return_leg_mode(text: str) -> tuple[str, float | None]:
    """`--return-leg learned` (default) | `mirror` | a fixed number of ms."""
    word = text.strip().lower()
    if word in ("learned", "learn", "auto"):
        return "learned", None
    if word in ("", "mirror", "upload"):
        return "mirror", None
    try:
        value = float(word)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"return leg must be 'learned', 'mirror' or a number of ms >= 0, got {text!r}")
    return "fixed", value


def network_class(client_id: str) -> str:
    head, sep, _ = client_id.partition("/")
    return head if sep and head else DEFAULT_CLASS


@dataclass(frozen=True, slots=True)
class LegEstimate:
    estimate: ReturnLegEstimate
    owner: str  # "client" | "class": whose basis_ms the estimate carries
    source: str = "prior"  # "client" | "class" | "prior": which model answered (a decision's provenance)


class ReturnLegBook:
    def __init__(self, settings: ReturnLegSettings = ReturnLegSettings(), *, shared: bool = False) -> None:
        self.settings = settings
        self.shared = shared
        self._clients: collections.OrderedDict[str, ReturnLegModel] = collections.OrderedDict()
        self._classes: dict[str, ReturnLegModel] = {}
        self._priors = ReturnLegBook(settings) if shared else None  # never learns: the prior's state only
        self.evicted = 0
        self.applied = 0  # stream samples learned (shared)

    def _new(self, *, shared_by_clients: bool = False) -> ReturnLegModel:
        s = self.settings
        if shared_by_clients:
            return ReturnLegModel(alpha=s.alpha, window=s.window, min_samples=s.min_samples, prior=s.prior,
                                  source_cap=s.class_cap, min_sources=s.class_min_clients)
        return ReturnLegModel(alpha=s.alpha, window=s.window, min_samples=s.min_samples, prior=s.prior)

    def client_model(self, client_id: str) -> ReturnLegModel | None:
        """The client's own model (created on first sight; None for anonymous requests)."""
        if not client_id:
            return None
        model = self._clients.get(client_id)
        if model is None:
            model = self._clients[client_id] = self._new()
            if len(self._clients) > self.settings.clients:
                self._clients.popitem(last=False)
                self.evicted += 1
        else:
            self._clients.move_to_end(client_id)
        return model

    def class_model(self, client_id: str) -> ReturnLegModel:
        name = network_class(client_id)
        model = self._classes.get(name)
        if model is None:
            if len(self._classes) >= self.settings.classes and name != DEFAULT_CLASS:
                return self.class_model("")
            model = self._classes[name] = self._new(shared_by_clients=True)
        return model

    def class_name(self, client_id: str) -> str:
        """The class whose model learns the client's reports (the default class beyond `classes`)."""
        name = network_class(client_id)
        return name if name in self._classes or len(self._classes) < self.settings.classes else DEFAULT_CLASS

    def class_models(self) -> list[tuple[str, ReturnLegModel]]:
        return list(self._classes.items())

    def new_class_model(self) -> ReturnLegModel:
        return self._new(shared_by_clients=True)

    def replace_class_model(self, name: str, model: ReturnLegModel) -> None:
        """`model` (a new_class_model) decides and learns for the class `name` from now on."""
        model.take_uploads(self._classes[name])
        self._classes[name] = model

    def _find_class(self, client_id: str) -> ReturnLegModel | None:
        """class_model without creating one."""
        model = self._classes.get(network_class(client_id))
        if model is None and len(self._classes) >= self.settings.classes:
            model = self._classes.get(DEFAULT_CLASS)
        return model

    def estimate(self, client_id: str, upload_ms: float) -> LegEstimate:
        """Also counts the upload for the `uploads` prior (a no-op with `mirror`)."""
        if self._priors is not None:
            own = self._clients.get(client_id) if client_id else None
            if own is not None and own.ready:
                return LegEstimate(own.estimate(upload_ms), "client", "client")
            shared = self._find_class(client_id)
            if shared is not None and shared.ready:
                return LegEstimate(shared.estimate(upload_ms), "class", "class")
            return self._priors.estimate(client_id, upload_ms)
        own = self.client_model(client_id)
        shared = self.class_model(client_id)
        shared.observe_upload(upload_ms)
        if own is not None:
            own.observe_upload(upload_ms)
            if own.ready or not shared.ready:
                return LegEstimate(own.estimate(upload_ms), "client", "client" if own.ready else "prior")
        return LegEstimate(shared.estimate(upload_ms), "class", "class" if shared.ready else "prior")

    def observe(self, client_id: str, upload_ms: float, return_ms: float, basis_ms: float | None,
                owner: str) -> None:
        """One reported leg: into the client's model and its class's, each with the basis its own
        estimate used (None, i.e. its own last leg, where the other model decided). A shared book
        ignores it: it learns from the stream only (`apply`), its own reports included."""
        if self.shared:
            return
        own = self._clients.get(client_id) if client_id else None
        if own is not None:
            own.observe(upload_ms, return_ms, basis_ms if owner == "client" else None)
        self.class_model(client_id).observe(upload_ms, return_ms, basis_ms if owner == "class" else None,
                                            client_id)

    def apply(self, sample: ReturnLegSample) -> None:
        """One leg from the shared stream (a shared book; stream order): models are created and
        kept in LRU order by the stream alone, so every replica holds the same ones."""
        cid = sample.client_id
        own = self.client_model(cid)
        if own is not None:
            own.observe(sample.upload_ms, sample.return_ms, sample.basis_ms if sample.owner == "client" else None)
        self.class_model(cid).observe(sample.upload_ms, sample.return_ms,
                                      sample.basis_ms if sample.owner == "class" else None, cid)
        self.applied += 1

    def capped(self) -> int:
        """Reports the class models left out: their client already held its share of the window."""
        return sum(model.ignored for model in self._classes.values())

    def known_clients(self) -> int:
        return len(self._clients)
