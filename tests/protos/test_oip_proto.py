"""The vendored Open Inference Protocol: committed code matches the proto, the wire names are the
protocol's (so Triton/KServe/MLServer peers talk to it unchanged), and it shares a process with
Triton's client package, which registers the same `inference.*` names in protobuf's default pool."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROTOS = ROOT / "protos"
OIP = PROTOS / "modipick" / "oip" / "v2"


def test_generated_oip_code_matches_the_proto(tmp_path):
    out = subprocess.run([sys.executable, str(PROTOS / "generate.py"), "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    fresh = sorted((tmp_path / "modipick" / "oip" / "v2").glob("*_pb2*.py*"))
    assert [p.name for p in fresh] == ["open_inference_grpc_pb2.py", "open_inference_grpc_pb2.pyi",
                                       "open_inference_grpc_pb2_grpc.py"]
    for path in fresh:
        committed = OIP / path.name
        assert committed.read_bytes() == path.read_bytes(), f"{committed.name} is stale: run `make protos`"


def test_the_vendored_proto_keeps_its_licence_and_wire_names():
    text = (OIP / "open_inference_grpc.proto").read_text()
    assert "Licensed under the Apache License, Version 2.0" in text
    from modipick.oip.v2 import open_inference_grpc_pb2 as oip

    assert oip.DESCRIPTOR.package == "inference"
    service = oip.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert service.full_name == "inference.GRPCInferenceService"
    assert {m.name for m in service.methods} >= {"ServerLive", "ServerReady", "ModelReady", "ServerMetadata",
                                                 "ModelMetadata", "ModelInfer"}


def test_it_loads_beside_tritonclient_in_either_order_and_speaks_the_same_bytes():
    code = """
import sys
first = sys.argv[1]
if first == "triton":
    import tritonclient.grpc.service_pb2 as triton
    from modipick.oip.v2 import open_inference_grpc_pb2 as ours
else:
    from modipick.oip.v2 import open_inference_grpc_pb2 as ours
    import tritonclient.grpc.service_pb2 as triton
request = ours.ModelInferRequest(model_name="digits", id="r1", raw_input_contents=[b"abcd"])
request.inputs.add(name="image", datatype="FP32", shape=[1])
request.parameters["sla_ms"].double_param = 150.0
theirs = triton.ModelInferRequest.FromString(request.SerializeToString())
assert theirs.parameters["sla_ms"].double_param == 150.0 and theirs.inputs[0].datatype == "FP32"
assert ours.ModelInferRequest.FromString(theirs.SerializeToString()) == request
print("ok")
"""
    for first in ("triton", "ours"):
        out = subprocess.run([sys.executable, "-c", code, first], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
