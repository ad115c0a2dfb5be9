"""Write a Keras model as a SavedModel with an explicit serving signature (TensorFlow imported lazily).

The signature is what TF Serving and the embedded backend run: input "image" (float32, batch
first), output {"probabilities": [batch, classes]}. Input scaling lives in the graph, so every
backend feeds the same raw values. TF Serving warm-up records go beside it (modipick.zoo.warmup).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Callable, Sequence

from modipick.zoo.manifest import INPUT_NAME, OUTPUT_NAME, SIGNATURE_NAME
from modipick.zoo.warmup import write_warmup_requests


def export_saved_model(model: Any, version_dir: str | os.PathLike[str], input_shape: Sequence[int], *,
                       preprocess: Callable[[Any], Any] | None = None) -> Path:
    """Save `model` into <model>/<version>/ atomically (written beside it, then renamed), so a
    server polling the base path never loads half a SavedModel."""
    import tensorflow as tf

    class Serving(tf.Module):
        def __init__(self, net: Any) -> None:
            super().__init__()
            self.net = net

        @tf.function(input_signature=[tf.TensorSpec([None, *input_shape], tf.float32, name=INPUT_NAME)])
        def serve(self, image: Any) -> dict[str, Any]:
            x = preprocess(image) if preprocess is not None else image
            return {OUTPUT_NAME: self.net(x, training=False)}

    final = Path(version_dir)
    tmp = final.with_name(f".tmp-{final.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    module = Serving(model)
    tf.saved_model.save(module, str(tmp), signatures={SIGNATURE_NAME: module.serve})
    write_warmup_requests(tmp, final.parent.name, input_shape)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final
