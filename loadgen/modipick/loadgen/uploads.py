"""What each emulated client uploads: one fixed input size, or the size the SDK would choose.

`fixed:PX` sends every photo as a PX JPEG; `adaptive` runs the SDK's own policy
(`modipick.core.uploads.choose_upload`, the one `UploadPlanner` runs) per request, with each
client's bandwidth learned from the uploads the Selector measured for it (`timings.upload_ms`).
Either way the request's upload leg is the trace's time for *that* payload at that instant, so
the sizes compete on the same network. The photos are the image dataset's scenes, JPEG-encoded
with the SDK's encoder at every size of the menu; the menu's models come from the Profiler's
profiles (latency, declared accuracy) and each model's input size from the pool's manifest.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from typing import Mapping, Protocol, Sequence

from modipick.client.uploads import encode_jpeg
from modipick.core.policies import Policy, make_policy
from modipick.core.profiles import Candidate
from modipick.core.uploads import (BandwidthEstimate, UploadMenu, UploadVariant, ValueMemo, choose_upload,
                                   models_for_size)
from modipick.loadgen.datasets import Sample, render_scenes
from modipick.loadgen.errors import LoadgenInputError
from modipick.loadgen.traces.legs import LegModel, TraceLegs
from modipick.v1 import common_pb2

SCENE_PX = 448  # the photos are rendered this large, then scaled down to each size


class SizedImages:
    """`count` scenes, each as a JPEG at every size of `sizes` (px)."""

    def __init__(self, sizes: Sequence[int], *, count: int = 8, seed: int = 0, quality: int = 90) -> None:
        scenes = render_scenes(SCENE_PX, count=count, seed=seed)
        self.sizes = tuple(sizes)
        self._samples = {size: [Sample(common_pb2.Input(encoded_image=jpeg), None, len(jpeg))
                                for jpeg in (encode_jpeg(scene, size, quality) for scene in scenes)]
                         for size in self.sizes}

    def sample(self, index: int, size: int) -> Sample:
        samples = self._samples[size]
        return samples[index % len(samples)]

    def mean_bytes(self, size: int) -> int:
        samples = self._samples[size]
        return round(sum(s.nbytes for s in samples) / len(samples))


class UploadChooser(Protocol):
    name: str

    def choose(self, client_id: str, sla_ms: float) -> int:
        """The input size (px) this client sends now."""
        ...

    def observe(self, client_id: str, payload_bytes: int, upload_ms: float) -> None:
        """One upload of this client, as the Selector measured it."""
        ...


@dataclass
class FixedUpload:
    size: int

    @property
    def name(self) -> str:
        return f"fixed_{self.size}"

    def choose(self, client_id: str, sla_ms: float) -> int:
        return self.size

    def observe(self, client_id: str, payload_bytes: int, upload_ms: float) -> None:
        pass


@dataclass
class AdaptiveUpload:
    """The SDK's choice per client: the same core call and estimate as `UploadPlanner` (no device
    model: a request the server does not answer in time scores 0)."""

    menu: UploadMenu
    reply_ms: float = 20.0
    policy: Policy = field(default_factory=lambda: make_policy("risk_aware"))
    name: str = "adaptive"
    _estimates: dict[str, BandwidthEstimate] = field(default_factory=dict)
    _memos: dict[str, ValueMemo] = field(default_factory=dict)
    chosen: dict[int, int] = field(default_factory=dict)  # input size -> requests sent at it

    def choose(self, client_id: str, sla_ms: float) -> int:
        memo = self._memos.setdefault(client_id, ValueMemo())
        size = choose_upload(self.menu, self._estimates.get(client_id), sla_ms, self.policy,
                             return_ms=self.reply_ms, memo=memo).variant.input_size
        self.chosen[size] = self.chosen.get(size, 0) + 1
        return size

    def observe(self, client_id: str, payload_bytes: int, upload_ms: float) -> None:
        if upload_ms > 0:
            estimate = self._estimates.get(client_id) or BandwidthEstimate()
            self._estimates[client_id] = estimate.observe(payload_bytes, upload_ms)


@dataclass
class UploadPlan:
    """What a run sends: the chooser, the photos at every size, the network per payload size."""

    chooser: UploadChooser
    images: SizedImages
    name: str = ""  # its --uploads entry ("adaptive", "fixed:224"), for records and reports
    _networks: dict[tuple[int, int], LegModel] = field(default_factory=dict)

    def network(self, network: LegModel, payload_bytes: int) -> LegModel:
        """`network` carrying a request of `payload_bytes`."""
        key = (id(network), payload_bytes)
        sized = self._networks.get(key)
        if sized is None:
            if not isinstance(network, TraceLegs):
                raise LoadgenInputError("--uploads", f"network {network.name!r} is not a link trace; the upload "
                                                     "sizes need one (a Mahimahi or throughput trace)")
            sized = replace(network, sizes=replace(network.sizes, request_bytes=payload_bytes))
            self._networks[key] = sized
        return sized


def parse_uploads(text: str, sizes: Sequence[int]) -> list[str]:
    """`adaptive,fixed:224` -> ["adaptive", "fixed:224"], each checked against the menu's sizes."""
    specs = [s.strip() for s in text.split(",") if s.strip()]
    for spec in specs:
        if spec == "adaptive":
            continue
        kind, _, px = spec.partition(":")
        if kind != "fixed" or not px.isdigit() or int(px) not in sizes:
            raise LoadgenInputError("--uploads", f"{spec!r}: expected 'adaptive' or 'fixed:PX' with PX one of "
                                                 f"--upload-sizes ({', '.join(map(str, sizes))})")
    if not specs:
        raise LoadgenInputError("--uploads", "expected at least one of 'adaptive', 'fixed:PX'")
    return specs


def read_input_sizes(path: str | os.PathLike[str]) -> dict[str, int]:
    """model name -> square input size, from a zoo pool manifest.json (models declaring none left out)."""
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as handle:
            models = json.load(handle)["models"]
        return {m["name"]: int(m["input_size"]) for m in models if m.get("input_size")}
    except OSError as exc:
        raise LoadgenInputError(source, exc.strerror or str(exc)) from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise LoadgenInputError(source, f"not a pool manifest with models' input sizes ({exc})") from None


def build_menu(profiles: Sequence[Candidate], input_sizes: Mapping[str, int], images: SizedImages,
               default_size: int) -> UploadMenu:
    """The menu of `images`' sizes, each feeding the profiled models of its size or less."""
    sized = [(c, input_sizes[c.name]) for c in profiles if c.name in input_sizes]
    if not sized:
        raise LoadgenInputError("--manifest", "no profiled model has an input size in the manifest")
    variants = []
    for size in images.sizes:
        feeds = models_for_size(sized, size)
        if feeds:
            variants.append(UploadVariant(size, images.mean_bytes(size), feeds))
    if default_size not in [v.input_size for v in variants]:
        raise LoadgenInputError("--upload-default", f"{default_size} px feeds no profiled model")
    return UploadMenu(tuple(variants), default_size)


def make_chooser(spec: str, menu: UploadMenu, reply_ms: float, policy: str) -> UploadChooser:
    if spec == "adaptive":
        return AdaptiveUpload(menu, reply_ms, make_policy(policy or "risk_aware"))
    return FixedUpload(int(spec.partition(":")[2]))
