"""The pool the reliability rig serves: a few digits models plus "flaky", a real SavedModel that
fails while its switch file is missing.

"flaky" reads the file named by a string variable ("modipick-flaky-switch", relative: resolved
against the Executor's working directory) on every call, so a test breaks and mends the model by
removing and restoring that file: the Executor really runs it and TensorFlow really fails
(NotFoundError -> the Executor's INTERNAL). Built once in a subprocess and cached beside the
digits pool; the test process never imports TensorFlow.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from fixtures_zoo import zoo_cache_root

FLAKY = "flaky"
SWITCH_NAME = "modipick-flaky-switch"
FLAKY_BUILD = "flaky-v1"

_BUILD = r"""
import sys
import tensorflow as tf

class Flaky(tf.Module):
    def __init__(self):
        super().__init__()
        # a variable, not a constant: graph optimisation must not fold the read into the graph
        self.switch = tf.Variable("%s", dtype=tf.string, trainable=False)

    @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 1], tf.float32, name="image")])
    def serve(self, image):
        present = tf.cast(tf.strings.length(tf.io.read_file(self.switch)) >= 0, tf.float32)
        logits = tf.reshape(image, [-1, 64])[:, :10] * present
        return {"probabilities": tf.nn.softmax(logits)}

module = Flaky()
tf.saved_model.save(module, sys.argv[1], signatures={"serving_default": module.serve})
""" % SWITCH_NAME


def flaky_model_dir() -> Path:
    """<cache>/reliability/flaky-v1/flaky (with version 1 inside), built if missing."""
    root = zoo_cache_root() / "reliability" / FLAKY_BUILD / FLAKY
    if (root / "1" / "saved_model.pb").is_file():
        return root
    tmp = root.parent / "building"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    done = subprocess.run([sys.executable, "-c", _BUILD, str(tmp / "1")], capture_output=True, text=True,
                          timeout=300, env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    if done.returncode != 0:
        raise RuntimeError(f"building the flaky model failed:\n{done.stderr[-3000:]}")
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    return root


def assemble_pool(dest: Path, digits_pool: Path, models: list[str], *, flaky: bool = True) -> Path:
    """A TF Serving base path at `dest` serving `models` of the digits pool (by reference, not
    copied) and, with `flaky`, the flaky model (declared the most accurate, so policies pick it)."""
    from modipick.zoo.layout import ServedModel, write_models_config

    dest.mkdir(parents=True, exist_ok=True)
    manifest = json.loads((digits_pool / "manifest.json").read_text())
    entries = [m for m in manifest["models"] if m["name"] in models]
    served = [ServedModel(m["name"], str(digits_pool / m["name"])) for m in entries]
    if flaky:
        template = dict(entries[0])
        template.update(name=FLAKY, declared_accuracy=99.9, measured_accuracy=99.9, build_key=FLAKY_BUILD,
                        preprocessing="fails while ./" + SWITCH_NAME + " is missing")
        entries.append(template)
        served.append(ServedModel(FLAKY, str(flaky_model_dir())))
    write_models_config(dest, served)
    manifest["models"] = entries
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return dest
