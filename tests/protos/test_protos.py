"""The committed generated code matches the .proto files, and the protos are lint-clean under buf."""

import os
import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROTOS = ROOT / "protos"


def test_generated_code_matches_the_protos(tmp_path):
    out = subprocess.run([sys.executable, str(PROTOS / "generate.py"), "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    fresh = sorted((tmp_path / "modipick" / "v1").glob("*_pb2*.py*"))
    assert fresh, "protoc generated nothing"
    for path in fresh:
        committed = PROTOS / "modipick" / "v1" / path.name
        assert committed.exists(), f"{committed.name} is not committed: run `make protos`"
        assert committed.read_bytes() == path.read_bytes(), f"{committed.name} is stale: run `make protos`"


def buf_binary() -> str:
    candidates = [os.environ.get("MODIPICK_BUF", ""), str(ROOT / ".venv" / "buf" / "node_modules" / ".bin" / "buf"),
                  shutil.which("buf") or ""]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise AssertionError("buf is missing: `make test` installs it with npm (npm install @bufbuild/buf)")


def test_protos_are_clean_under_buf_lint():
    out = subprocess.run([buf_binary(), "lint"], cwd=PROTOS, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_buf_lint_catches_a_bad_name(tmp_path):
    bad = tmp_path / "modipick" / "v1"
    bad.mkdir(parents=True)
    (tmp_path / "buf.yaml").write_text((PROTOS / "buf.yaml").read_text())
    (bad / "bad.proto").write_text('syntax = "proto3";\npackage modipick.v1;\n'
                                   'service badService { rpc get(Req) returns (Req); }\nmessage Req {}\n')
    out = subprocess.run([buf_binary(), "lint"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "should be PascalCase" in out.stdout + out.stderr
