"""The app's own model: an on-device runner behind a small Protocol, and a LiteRT implementation
running a `.tflite` that `modipick zoo build --tflite` exports.

This machine is not a phone. `DeviceProfile` states how much slower the phone is than this
machine's measured LiteRT time, and the runner *emulates* the phone: it runs the model for real,
then waits out the difference, so a result arrives when it would on the phone. The default
profile is the paper's Figure 3 MotoX: MobileNet 0.25 averages about 150 ms there, and
`DEFAULT_SLOWDOWN` is 150 ms over this machine's LiteRT time of the same network (MobileNetV1
0.25 at 224 px, dynamic-range quantized, one thread; see docs/mobile.md).
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

# The paper's Figure 3: MobileNet 0.25 on the MotoX, about 150 ms.
FIGURE3_MOTOX_MOBILENET_025_MS = 150.0
# This machine's LiteRT median for MobileNetV1 0.25 at 224 px (one thread), measured with
# benchmarks/sdk_overhead.py (best median of 10 batches of 20); the phone is that much slower.
HOST_MOBILENET_025_224_MS = 3.0
DEFAULT_SLOWDOWN = FIGURE3_MOTOX_MOBILENET_025_MS / HOST_MOBILENET_025_224_MS


@dataclass(frozen=True, slots=True)
class DeviceProfile:
    """How a phone compares with this machine: its LiteRT time = this machine's x `slowdown`."""

    name: str = "MotoX (emulated from the paper's Figure 3)"
    slowdown: float = DEFAULT_SLOWDOWN

    def __post_init__(self) -> None:
        if not self.slowdown >= 1.0:
            raise ValueError(f"slowdown must be >= 1 (a phone no faster than this machine), got {self.slowdown!r}")

    @classmethod
    def from_reference(cls, name: str, phone_ms: float, host_ms: float) -> "DeviceProfile":
        """A profile from one model timed on the phone (`phone_ms`) and here (`host_ms`)."""
        if not (phone_ms > 0 and host_ms > 0):
            raise ValueError("reference times must be > 0 ms")
        return cls(name, max(1.0, phone_ms / host_ms))


@dataclass(frozen=True, slots=True)
class DeviceAnswer:
    label: int
    score: float
    latency_ms: float   # as the phone would take (emulated)
    host_ms: float      # what the model really took here


class OnDeviceRunner(Protocol):
    name: str
    accuracy: float      # percent, what the app's model is known to reach
    expected_ms: float   # T_D: its expected time on the phone

    def run(self, image: Any, cancel: threading.Event | None = None) -> DeviceAnswer | None:
        """Classify one image (encoded bytes, a PIL image or an array); None when `cancel` was set
        before the answer was ready."""
        ...


class LiteRTRunner:
    """A `.tflite` classifier on LiteRT (`ai-edge-litert`), emulating `profile`'s phone.

    One interpreter, so runs are serialised (a phone runs its model once at a time too). Inputs
    are resized to the model's square size; float models receive pixels 0..255 (the zoo's exports
    scale inside the graph), uint8 models the raw pixels."""

    def __init__(self, model_path: str | Path, *, accuracy: float, profile: DeviceProfile = DeviceProfile(),
                 name: str | None = None, num_threads: int = 1, calibration_runs: int = 5,
                 host_ms: float | None = None,
                 sleep: Callable[[threading.Event, float], bool] | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        from ai_edge_litert.interpreter import Interpreter

        path = Path(model_path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such .tflite model")
        self.name = name or path.stem
        self.accuracy = float(accuracy)
        self.profile = profile
        self._clock = clock
        self._sleep = sleep or (lambda event, seconds: event.wait(seconds))
        self._lock = threading.Lock()
        self._interp = Interpreter(model_path=str(path), num_threads=num_threads)
        inp = self._interp.get_input_details()[0]
        shape = [int(d) for d in inp["shape"]]
        if len(shape) != 4 or shape[1] != shape[2]:
            raise ValueError(f"{path}: expected a square image input [1, H, W, C], got {shape}")
        self._input, self._dtype = inp["index"], inp["dtype"]
        self.input_size, self.channels = shape[1], shape[3]
        self._interp.resize_tensor_input(self._input, [1, *shape[1:]])
        self._interp.allocate_tensors()
        self._output = self._interp.get_output_details()[0]["index"]
        self.runs = 0  # images classified (calibration excluded)
        # this machine's time for the model: given (a calibration kept from before), else measured now
        self.host_ms = float(host_ms) if host_ms is not None else self.calibrate(calibration_runs)
        self.expected_ms = self.host_ms * profile.slowdown

    def _pixels(self, image: Any) -> Any:
        import numpy as np

        from modipick.client.uploads import resize_square

        pil = resize_square(image, self.input_size)
        if self.channels == 1:
            pil = pil.convert("L")
        arr = np.asarray(pil, dtype=np.uint8).reshape(1, self.input_size, self.input_size, self.channels)
        return arr if self._dtype == np.uint8 else arr.astype(self._dtype)

    def _invoke(self, pixels: Any) -> tuple[Any, float]:
        with self._lock:
            started = self._clock()
            self._interp.set_tensor(self._input, pixels)
            self._interp.invoke()
            out = self._interp.get_tensor(self._output)[0]
            return out, (self._clock() - started) * 1000.0

    def calibrate(self, runs: int) -> float:
        """Median LiteRT time here on a blank image, ms (the first run, which allocates, excluded)."""
        import numpy as np

        blank = np.zeros((1, self.input_size, self.input_size, self.channels), dtype=self._dtype)
        times = [self._invoke(blank)[1] for _ in range(max(1, runs) + 1)][1:]
        return statistics.median(times)

    def run(self, image: Any, cancel: threading.Event | None = None) -> DeviceAnswer | None:
        started = self._clock()
        self.runs += 1
        scores, host_ms = self._invoke(self._pixels(image))
        label = int(scores.argmax())
        elapsed = (self._clock() - started) * 1000.0
        phone_ms = host_ms * self.profile.slowdown + (elapsed - host_ms)  # preprocessing as here
        if self._sleep(cancel or threading.Event(), max(0.0, phone_ms - elapsed) / 1000.0):
            return None
        return DeviceAnswer(label, float(scores[label]), (self._clock() - started) * 1000.0, host_ms)

