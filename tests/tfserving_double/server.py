"""A TensorFlow Serving test double that speaks the real protocol (tensorflow_serving.apis).

No TF Serving binary can be installed here, so the tfserving backend is tested against this:
PredictionService (Predict, GetModelMetadata) and ModelService (GetModelStatus) over real gRPC
on loopback, serving the SavedModels of a base path in-process. It follows TF Serving's rules
where the backend depends on them:

- models and version policy from <base>/models.config (ModelServerConfig text) when present,
  else every model folder's latest version; version labels from the config;
- GetModelStatus: one version when model_spec.version is set, else all (labels are ignored, as
  in TF Serving); NOT_FOUND "Could not find any versions of model X";
- GetModelMetadata: metadata_field must be ["signature_def"]; the SignatureDefMap read from
  saved_model.pb's MetaGraphDef; the reply's model_spec carries the resolved version;
- Predict: version, version_label (unknown label -> INVALID_ARGUMENT "Unrecognized servable
  version label") or latest; unknown signature, inputs, dtype or output filter ->
  INVALID_ARGUMENT; unknown model/version -> NOT_FOUND "Servable not found for request".

Test hooks: set_state() (e.g. keep a version LOADING), set_delay() (a slow model that honours the
caller's deadline), and `calls` (what was asked, with the deadline each call carried).
"""

from __future__ import annotations

import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import text_format
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2, model_service_pb2_grpc,
                                     predict_pb2, prediction_service_pb2_grpc)
from tensorflow_serving.config import model_server_config_pb2

STATES = {"START": 10, "LOADING": 20, "AVAILABLE": 30, "UNLOADING": 40, "END": 50}


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


@dataclass
class ServedVersion:
    name: str
    version: int
    path: Path
    loaded: Any = None
    signature_defs: dict[str, Any] = field(default_factory=dict)
    state: str = "AVAILABLE"
    delay_s: float = 0.0


@dataclass
class Call:
    method: str
    model_spec: Any
    time_remaining_s: float | None


class ModelRegistry:
    def __init__(self, base: str | Path) -> None:
        import tensorflow as tf
        from tensorflow.core.protobuf import saved_model_pb2

        self.base = Path(base)
        self.versions: dict[str, dict[int, ServedVersion]] = {}
        self.labels: dict[str, dict[str, int]] = {}
        for name, base_path, wanted, labels in self._config():
            present = sorted(int(p.name) for p in base_path.iterdir() if p.name.isdigit())
            chosen = [v for v in present if v in wanted] if wanted else present[-1:]
            self.labels[name] = labels
            self.versions[name] = {}
            for version in chosen:
                path = base_path / str(version)
                saved = saved_model_pb2.SavedModel.FromString((path / "saved_model.pb").read_bytes())
                graph = next(g for g in saved.meta_graphs if "serve" in g.meta_info_def.tags)
                self.versions[name][version] = ServedVersion(
                    name, version, path, loaded=tf.saved_model.load(str(path)),
                    signature_defs=dict(graph.signature_def))

    def _config(self) -> list[tuple[str, Path, tuple[int, ...], dict[str, int]]]:
        config_file = self.base / "models.config"
        if not config_file.is_file():
            return [(p.name, p, (), {}) for p in sorted(self.base.iterdir())
                    if p.is_dir() and any(c.name.isdigit() for c in p.iterdir())]
        config = model_server_config_pb2.ModelServerConfig()
        text_format.Parse(config_file.read_text(), config)
        entries = []
        for entry in config.model_config_list.config:
            path = Path(entry.base_path)
            if not path.is_dir():
                path = self.base / entry.name
            policy = entry.model_version_policy
            wanted = tuple(policy.specific.versions) if policy.WhichOneof("policy_choice") == "specific" else ()
            entries.append((entry.name, path, wanted, dict(entry.version_labels)))
        return entries

    def resolve(self, spec: Any) -> ServedVersion:
        """A servable handle as ServerCore::GetServableHandle gives it (AVAILABLE versions only)."""
        versions = self.versions.get(spec.name, {})
        if spec.HasField("version") and spec.version_label:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "ModelSpec has both version and label set")
        if spec.version_label:
            if spec.version_label not in self.labels.get(spec.name, {}):
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                             f"Unrecognized servable version label: {spec.version_label}")
            version = self.labels[spec.name][spec.version_label]
            request = f"Specific({spec.name}, {version})"
        elif spec.HasField("version"):
            version = spec.version.value
            request = f"Specific({spec.name}, {version})"
        else:
            ready = [v for v, s in versions.items() if s.state == "AVAILABLE"]
            version = max(ready) if ready else -1
            request = f"Latest({spec.name})"
        served = versions.get(version)
        if served is None or served.state != "AVAILABLE":
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {request}")
        return served


def _guard(method):
    def wrapper(self, request, context):
        spec = type(request.model_spec)()
        spec.CopyFrom(request.model_spec)
        self.double.calls.append(Call(method.__name__, spec, context.time_remaining()))
        try:
            return method(self, request, context)
        except _Abort as abort:
            context.abort(abort.code, abort.details)
    wrapper.__name__ = method.__name__
    return wrapper


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, double: "TFServingDouble") -> None:
        self.double = double

    @_guard
    def GetModelMetadata(self, request, context):
        if not request.metadata_field:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                         "GetModelMetadataRequest must specify at least one metadata_field")
        for metadata_field in request.metadata_field:
            if metadata_field != "signature_def":
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"Metadata field {metadata_field} is not supported")
        served = self.double.registry.resolve(request.model_spec)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, signature in served.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(signature)
        reply = get_model_metadata_pb2.GetModelMetadataResponse()
        reply.model_spec.name = served.name
        reply.model_spec.version.value = served.version
        reply.metadata["signature_def"].Pack(signature_map)
        return reply

    @_guard
    def Predict(self, request, context):
        import tensorflow as tf

        served = self.double.registry.resolve(request.model_spec)
        signature_name = request.model_spec.signature_name or "serving_default"
        signature = served.signature_defs.get(signature_name)
        if signature is None:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f'Serving signature key "{signature_name}" not found.')
        sent, expected = set(request.inputs), set(signature.inputs)
        if sent != expected:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                         f"input size does not match signature: {len(sent)}!={len(expected)} "
                         f"Sent extra: {sorted(sent - expected)}. Missing but required: {sorted(expected - sent)}.")
        tensors = {}
        for key, proto in request.inputs.items():
            if proto.dtype != signature.inputs[key].dtype:
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                             f"Expects arg[0] to be {tf.dtypes.as_dtype(signature.inputs[key].dtype).name} but "
                             f"{tf.dtypes.as_dtype(proto.dtype).name} is provided")
            tensors[key] = tf.constant(tf.make_ndarray(proto))
        wanted = list(request.output_filter) or list(signature.outputs)
        for alias in wanted:
            if alias not in signature.outputs:
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                             f"output tensor alias not found in signature: {alias} Outputs expected to be in the "
                             f"set {{{','.join(sorted(signature.outputs))}}}.")
        self._delay(served, context)
        try:
            outputs = served.loaded.signatures[signature_name](**tensors)
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as exc:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, str(getattr(exc, "message", exc)).splitlines()[0])
        reply = predict_pb2.PredictResponse()
        reply.model_spec.name = served.name
        reply.model_spec.version.value = served.version
        reply.model_spec.signature_name = signature_name
        for alias in wanted:
            reply.outputs[alias].CopyFrom(tf.make_tensor_proto(outputs[alias].numpy()))
        return reply

    @staticmethod
    def _delay(served: ServedVersion, context) -> None:
        end = time.monotonic() + served.delay_s
        while time.monotonic() < end:
            if not context.is_active():
                raise _Abort(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
            time.sleep(0.005)


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, double: "TFServingDouble") -> None:
        self.double = double

    @_guard
    def GetModelStatus(self, request, context):
        if not request.HasField("model_spec"):
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
        spec = request.model_spec
        versions = self.double.registry.versions.get(spec.name, {})
        reply = get_model_status_pb2.GetModelStatusResponse()
        if spec.HasField("version"):
            served = versions.get(spec.version.value)
            if served is None:
                raise _Abort(grpc.StatusCode.NOT_FOUND,
                             f"Could not find version {spec.version.value} of model {spec.name}")
            chosen = [served]
        else:
            if not versions:
                raise _Abort(grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {spec.name}")
            chosen = [versions[v] for v in sorted(versions)]
        for served in chosen:
            status = reply.model_version_status.add(version=served.version, state=STATES[served.state])
            status.status.error_code = 0
        return reply


class TFServingDouble:
    def __init__(self, base: str | Path, *, address: str = "127.0.0.1:0", max_workers: int = 8) -> None:
        self.registry = ModelRegistry(base)
        self.calls: list[Call] = []
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="tfs"))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionServicer(self), self._server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(self), self._server)
        self.port = self._server.add_insecure_port(address)
        self._lock = threading.Lock()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "TFServingDouble":
        self._server.start()
        return self

    def stop(self, grace_s: float = 0.5) -> None:
        self._server.stop(grace_s).wait()

    def set_state(self, name: str, version: int, state: str) -> None:
        with self._lock:
            self.registry.versions[name][version].state = state

    def set_delay(self, name: str, delay_s: float) -> None:
        with self._lock:
            for served in self.registry.versions[name].values():
                served.delay_s = delay_s

    def reset(self) -> None:
        with self._lock:
            for versions in self.registry.versions.values():
                for served in versions.values():
                    served.state, served.delay_s = "AVAILABLE", 0.0
            self.calls.clear()
