"""`modipick zoo build` writes TF Serving warm-up records into every SavedModel version:
assets.extra/tf_serving_warmup_requests, a TFRecord of PredictionLog protos. Read here with an
independent TFRecord reader (length, masked CRC-32C of length and data) and checked against the
SavedModel's own serving signature, then run through that signature."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tensorflow_serving.apis import prediction_log_pb2

WARMUP = Path("assets.extra") / "tf_serving_warmup_requests"


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def masked_crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecords(path: Path) -> list[bytes]:
    data, records, at = path.read_bytes(), [], 0
    while at < len(data):
        header = data[at:at + 8]
        (length,) = struct.unpack("<Q", header)
        (length_crc,) = struct.unpack("<I", data[at + 8:at + 12])
        assert length_crc == masked_crc32c(header), f"{path}: bad length CRC at byte {at}"
        payload = data[at + 12:at + 12 + length]
        (payload_crc,) = struct.unpack("<I", data[at + 12 + length:at + 16 + length])
        assert len(payload) == length and payload_crc == masked_crc32c(payload), f"{path}: bad record at byte {at}"
        records.append(payload)
        at += 16 + length
    return records


def test_the_tfrecord_reader_rejects_a_corrupt_file(tmp_path: Path) -> None:
    # the reader above is what "parseable" means below: it must notice a flipped byte
    record = b"modipick"
    header = struct.pack("<Q", len(record))
    good = header + struct.pack("<I", masked_crc32c(header)) + record + struct.pack("<I", masked_crc32c(record))
    (tmp_path / "good").write_bytes(good)
    assert tfrecords(tmp_path / "good") == [record]
    (tmp_path / "bad").write_bytes(good[:13] + b"X" + good[14:])
    with pytest.raises(AssertionError, match="bad record"):
        tfrecords(tmp_path / "bad")


@pytest.fixture(scope="module")
def built_pool(tmp_path_factory) -> Path:
    """A real `modipick zoo build` of the smallest digits model (trains ~10 epochs on 1,500 digits)."""
    out = tmp_path_factory.mktemp("zoo") / "digits"
    command = [str(Path(sys.executable).parent / "modipick"), "zoo", "build", "--pool", "digits",
               "--models", "mlp-tiny", "--out", str(out)]
    done = subprocess.run(command, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return out


def test_zoo_build_writes_warmup_requests_matching_the_signature(built_pool: Path) -> None:
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    version_dir = built_pool / "mlp-tiny" / "1"
    records = tfrecords(version_dir / WARMUP)
    assert records, "empty warm-up file"
    saved = saved_model_pb2.SavedModel.FromString((version_dir / "saved_model.pb").read_bytes())
    loaded = tf.saved_model.load(str(version_dir))
    for payload in records:
        log = prediction_log_pb2.PredictionLog.FromString(payload)
        assert log.WhichOneof("log_type") == "predict_log"
        request = log.predict_log.request
        assert request.model_spec.name == "mlp-tiny"
        signature = saved.meta_graphs[0].signature_def[request.model_spec.signature_name]
        assert set(request.inputs) == set(signature.inputs)
        for name, tensor in request.inputs.items():
            spec = signature.inputs[name]
            assert tensor.dtype == spec.dtype
            wanted = [d.size for d in spec.tensor_shape.dim]
            got = [d.size for d in tensor.tensor_shape.dim]
            assert len(got) == len(wanted) and all(w in (-1, g) for w, g in zip(wanted, got)), (wanted, got)
        # and the request runs: the signature answers it with one probability row per image
        function = loaded.signatures[request.model_spec.signature_name]
        feeds = {name: tf.constant(tf.make_ndarray(tensor)) for name, tensor in request.inputs.items()}
        outputs = function(**feeds)
        batch = request.inputs[next(iter(request.inputs))].tensor_shape.dim[0].size
        (probabilities,) = outputs.values()
        assert probabilities.shape == (batch, 10)
        assert np.allclose(probabilities.numpy().sum(axis=1), 1.0, atol=1e-4)
