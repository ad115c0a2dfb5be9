"""Labelled inputs: sklearn digits as the contract's raw tensors; opaque payloads."""

from __future__ import annotations

import numpy as np

from modipick.loadgen.datasets import DigitsSource, PayloadSource, make_dataset


def test_digits_are_raw_float32_tensors_with_labels():
    source = DigitsSource(seed=1)
    assert len(source) == 1797
    sample = source.sample(5)
    tensor = sample.input.tensor
    assert tensor.dtype == "float32" and list(tensor.shape) == [1, 8, 8, 1]
    pixels = np.frombuffer(tensor.content, dtype=np.float32)
    assert pixels.size == 64 and pixels.min() >= 0 and pixels.max() <= 16 and pixels.max() > 1
    assert 0 <= sample.label <= 9 and sample.nbytes == sample.input.ByteSize()
    assert source.sample(5 + len(source)) == sample                     # wraps around
    assert DigitsSource(seed=1).sample(5) == sample                      # seeded order
    labels = {DigitsSource(seed=2).sample(i).label for i in range(50)}
    assert len(labels) >= 8


def test_payload_has_the_requested_size_and_no_label():
    sample = make_dataset("payload", payload_bytes=330_000).sample(0)
    assert sample.label is None and len(sample.input.encoded_image) == 330_000
    assert sample.nbytes >= 330_000
    assert PayloadSource(10).sample(3) == PayloadSource(10).sample(0)
