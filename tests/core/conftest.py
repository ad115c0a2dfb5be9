import pytest

from modipick.core import Candidate

# The paper's Table 2 (top-1 accuracy %, mean ms, std ms on the GPU server), NasNet Fictional included.
TABLE2 = (
    Candidate("SqueezeNet", 1, 49.0, 4.91, 0.06),
    Candidate("MobileNetV1 0.25", 1, 49.7, 3.21, 0.08),
    Candidate("MobileNetV1 0.5", 1, 63.2, 4.21, 0.06),
    Candidate("DenseNet", 1, 64.2, 25.49, 0.14),
    Candidate("MobileNetV1 0.75", 1, 68.3, 4.67, 0.07),
    Candidate("MobileNetV1 1.0", 1, 71.0, 5.43, 0.11),
    Candidate("NasNet Mobile", 1, 73.9, 21.18, 0.17),
    Candidate("InceptionResNetV2", 1, 77.5, 50.85, 0.33),
    Candidate("InceptionV3", 1, 77.9, 31.11, 0.19),
    Candidate("InceptionV4", 1, 80.1, 59.21, 0.22),
    Candidate("NasNet Large", 1, 82.6, 112.61, 0.36),
    Candidate("NasNet Fictional", 1, 50.0, 112.61, 0.36),
)


@pytest.fixture
def table2() -> tuple[Candidate, ...]:
    return TABLE2
