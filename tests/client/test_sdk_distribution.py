"""`clients/` is a distribution of its own (modipick-client): it builds, installs with nothing but
grpcio and protobuf beside it, is typed, and serves a prediction from a real loopback server.
Offline: the wheel is built without build isolation and the environment is made by hand."""

from __future__ import annotations

import email
import json
import os
import pathlib
import shutil
import subprocess
import sys
import zipfile

import pytest

from client_support import SelectorServer

ROOT = pathlib.Path(__file__).resolve().parents[2]
SOURCE_FILES = shutil.ignore_patterns("__pycache__", "*.pyc", "build", "*.egg-info")

CLIENT_SCRIPT = r"""
import importlib.util, json, sys
import modipick.client
from modipick.client import ModiPickClient
from modipick.v1 import selector_pb2

with ModiPickClient(sys.argv[1]) as client:
    result = client.infer(b"\x89PNG\r\n\x1a\n" + bytes(16), 2000, label=2)
print(json.dumps({"file": modipick.client.__file__, "label": result.label, "model": result.model,
                  "outcome_error": result.outcome_error,
                  "missing": [m for m in ("numpy", "redis", "structlog", "modipick.selector")
                              if importlib.util.find_spec(m) is None]}))
"""


def _link(module_file: str, into: pathlib.Path, depth: int) -> None:
    """Link the package (or module) `module_file` belongs to into `into`, keeping `depth` levels
    of namespace (google/protobuf: 2)."""
    path = pathlib.Path(module_file)
    package = path.parent if path.name == "__init__.py" else path
    parts = package.parts[-depth:]
    target = into.joinpath(*parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(package)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> pathlib.Path:
    tmp = tmp_path_factory.mktemp("sdk-dist")
    src = tmp / "src"
    shutil.copytree(ROOT / "clients", src / "clients", ignore=SOURCE_FILES)
    shutil.copytree(ROOT / "protos" / "modipick", src / "protos" / "modipick", ignore=SOURCE_FILES)
    wheels = tmp / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    out = subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(wheels),
                          str(src / "clients")], capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    (wheel,) = wheels.glob("modipick_client-*.whl")
    site = tmp / "site"
    out = subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    return tmp


def test_the_wheel_needs_only_grpcio_and_protobuf_and_is_typed(installed):
    (wheel,) = (installed / "wheels").glob("modipick_client-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        meta = email.message_from_bytes(archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))))
    required = sorted(r.split(">")[0].split("=")[0].strip() for r in meta.get_all("Requires-Dist")
                      if "extra ==" not in r)
    assert required == ["grpcio", "protobuf"]
    assert {"modipick/client/py.typed", "modipick/v1/py.typed", "modipick/v1/selector_pb2.pyi",
            "modipick/v1/errors_pb2.py", "modipick/client/sync.py"} <= names
    assert not any(n.startswith(("modipick/selector", "modipick/runtime", "modipick/core")) for n in names)


def test_the_installed_sdk_predicts_with_only_grpcio_and_protobuf(installed):
    deps = installed / "deps"
    if not deps.exists():
        import google.protobuf
        import grpc
        import typing_extensions

        _link(grpc.__file__, deps, 1)
        _link(google.protobuf.__file__, deps, 2)
        _link(typing_extensions.__file__, deps, 1)
    server = SelectorServer()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env["PYTHONPATH"] = os.pathsep.join([str(installed / "site"), str(deps)])
        # -S: no site-packages, so only what the wheel installed and the two dependencies import
        out = subprocess.run([sys.executable, "-S", "-c", CLIENT_SCRIPT, server.target], cwd=installed,
                             env=env, capture_output=True, text=True, timeout=120)
    finally:
        server.stop()
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["file"].startswith(str(installed / "site"))
    assert report["missing"] == ["numpy", "redis", "structlog", "modipick.selector"]
    assert report["label"] == 2 and report["model"] == "cnn-small" and report["outcome_error"] == ""
    assert server.double.reports and server.double.reports[0].true_label == 2
