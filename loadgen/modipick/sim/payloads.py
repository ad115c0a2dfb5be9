"""The payload ladder: bytes of the same photos JPEG-encoded at each input size, measured with
the SDK's own encoder on the photos that ship with scikit-learn (`load_sample_images`: a temple in
China and a flower, 640x427). The original is the paper's 330 KB image."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from modipick.sim.errors import SimInputError

ORIGINAL = 0
PAPER_IMAGE_BYTES = 330_000


@dataclass(frozen=True, slots=True)
class Payload:
    input_size: int   # px; 0 = the original
    bytes: int
    source: str


def sample_photos() -> list:
    try:
        from sklearn.datasets import load_sample_images
    except ImportError:
        raise SimInputError("the payload ladder needs scikit-learn's sample photos: pip install 'modipick[sim]'") \
            from None
    return list(load_sample_images().images)


def measure_ladder(sizes: Sequence[int], quality: int) -> tuple[Payload, ...]:
    """Mean JPEG size over the sample photos at each input size, plus the paper's 330 KB original."""
    try:
        from modipick.client.uploads import encode_jpeg
        photos = sample_photos()
        ladder = [Payload(s, round(sum(len(encode_jpeg(p, s, quality)) for p in photos) / len(photos)),
                          f"JPEG q{quality} of sklearn sample photos (mean of {len(photos)})")
                  for s in sorted(set(sizes))]
    except ImportError:
        raise SimInputError("the payload ladder needs Pillow: pip install 'modipick[sim]'") from None
    return (*ladder, Payload(ORIGINAL, PAPER_IMAGE_BYTES, "the paper's inference image (330 KB)"))
