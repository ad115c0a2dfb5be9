"""TF Serving warm-up records: <version>/assets.extra/tf_serving_warmup_requests, a TFRecord of
PredictionLog protos that TF Serving replays when it loads the version, before it reports the
version AVAILABLE. The first real call then finds the graph optimised and the kernels initialised
instead of paying for it inside someone's SLA.

One PredictRequest per batch size the Executors send (batch 1), on the model's serving signature,
with an input of the signature's dtype and shape. TensorFlow is imported lazily (export time only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from modipick.zoo.manifest import INPUT_NAME, SIGNATURE_NAME

WARMUP_DIR = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"
BATCH_SIZES = (1,)


def warmup_path(version_dir: str | Path) -> Path:
    return Path(version_dir) / WARMUP_DIR / WARMUP_FILE


def write_warmup_requests(version_dir: str | Path, model_name: str, input_shape: Sequence[int], *,
                          batch_sizes: Sequence[int] = BATCH_SIZES) -> Path:
    """Write the warm-up file into a SavedModel version directory; returns its path."""
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    path = warmup_path(version_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for batch in batch_sizes:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=SIGNATURE_NAME))
            # mid-grey: a plausible input, not an all-zero one some kernels special-case
            image = np.full((batch, *input_shape), 0.5, dtype=np.float32)
            request.inputs[INPUT_NAME].CopyFrom(tf.make_tensor_proto(image))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path
