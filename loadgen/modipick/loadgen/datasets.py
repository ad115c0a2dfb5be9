"""Labelled inputs for requests, behind one Protocol.

`DigitsSource` sends scikit-learn's bundled digits as the contract's raw tensors
(float32 [1, 8, 8, 1], pixel values 0..16); `PayloadSource` sends an opaque encoded image of a
chosen size without a label (to put real 330 KB requests on a shaped link in front of a server
that does not decode them).
"""

from __future__ import annotations

import random
from typing import NamedTuple, Protocol

from modipick.v1 import common_pb2


class Sample(NamedTuple):
    input: common_pb2.Input
    label: int | None
    nbytes: int  # serialized size of the input message


class DatasetSource(Protocol):
    name: str

    def __len__(self) -> int: ...

    def sample(self, index: int) -> Sample:
        """The input for request number `index` (the same index gives the same input)."""
        ...


def _sample(message: common_pb2.Input, label: int | None) -> Sample:
    return Sample(message, label, message.ByteSize())


class DigitsSource:
    name = "digits"

    def __init__(self, *, seed: int = 0, limit: int | None = None) -> None:
        from sklearn.datasets import load_digits  # lazily: only runs that send digits need scikit-learn

        digits = load_digits()
        order = list(range(len(digits.target)))
        random.Random(seed).shuffle(order)  # a seeded order, identical for every policy compared
        if limit is not None:
            order = order[:limit]
        images = digits.images.astype("float32")
        self._samples = [
            _sample(common_pb2.Input(tensor=common_pb2.Tensor(dtype="float32", shape=[1, 8, 8, 1],
                                                              content=images[i].tobytes())),
                    int(digits.target[i]))
            for i in order
        ]

    def __len__(self) -> int:
        return len(self._samples)

    def sample(self, index: int) -> Sample:
        return self._samples[index % len(self._samples)]


class PayloadSource:
    name = "payload"

    def __init__(self, nbytes: int = 330_000, *, seed: int = 0) -> None:
        if nbytes < 0:
            raise ValueError(f"payload size must be >= 0 bytes, got {nbytes}")
        # Random bytes, so nothing on the path can compress the request below its size.
        self._sample = _sample(common_pb2.Input(encoded_image=random.Random(seed).randbytes(nbytes)), None)

    def __len__(self) -> int:
        return 1

    def sample(self, index: int) -> Sample:
        return self._sample


DATASETS = ("digits", "payload")


def make_dataset(name: str, *, seed: int = 0, payload_bytes: int = 330_000) -> DatasetSource:
    if name == "digits":
        return DigitsSource(seed=seed)
    if name == "payload":
        return PayloadSource(payload_bytes, seed=seed)
    raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
