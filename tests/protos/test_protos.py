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


def _copy_protos(tmp_path: pathlib.Path) -> pathlib.Path:
    copy = tmp_path / "protos"
    shutil.copytree(PROTOS, copy, ignore=shutil.ignore_patterns("*.py", "*.pyi", "__pycache__"))
    return copy


def _breaking(protos: pathlib.Path) -> subprocess.CompletedProcess:
    return subprocess.run([buf_binary(), "breaking", "--against", "released"], cwd=protos, capture_output=True,
                          text=True, timeout=120)


def test_protos_keep_the_released_wire_contract():
    out = _breaking(PROTOS)
    assert out.returncode == 0, out.stdout + out.stderr


def test_buf_breaking_catches_a_removed_selector_field_and_leaves_the_executor_free(tmp_path):
    copy = _copy_protos(tmp_path)
    executor = copy / "modipick" / "v1" / "executor.proto"
    text = executor.read_text()
    start = text.index("  rpc ListModels(")
    executor.write_text(text[:text.index("  // The models the backend holds, with")]
                        + text[text.index("\n", start) + 1:])
    assert "ListModels(" not in executor.read_text()
    out = _breaking(copy)
    assert out.returncode == 0, "the internal ExecutorService may change: " + out.stdout + out.stderr

    selector = copy / "modipick" / "v1" / "selector.proto"
    selector.write_text(selector.read_text().replace("  // Optional override of the configured policy.\n"
                                                     "  string policy = 5;\n", ""))
    out = _breaking(copy)
    assert out.returncode != 0 and "policy" in out.stdout + out.stderr, out.stdout + out.stderr


def test_buf_lint_wants_every_field_documented(tmp_path):
    copy = _copy_protos(tmp_path)
    common = copy / "modipick" / "v1" / "common.proto"
    common.write_text(common.read_text().replace("  // The model's name in the pool (the serving name, e.g. "
                                                 "\"cnn-small\").\n", ""))
    out = subprocess.run([buf_binary(), "lint"], cwd=copy, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and 'Field "name" should have a non-empty comment' in out.stdout, out.stdout


def test_every_proto_file_names_its_package_for_mobile_and_go():
    from modipick.v1 import common_pb2, errors_pb2, executor_pb2, profiler_pb2, selector_pb2

    for module in (common_pb2, errors_pb2, executor_pb2, profiler_pb2, selector_pb2):
        options = module.DESCRIPTOR.GetOptions()
        assert options.java_package == "io.github.modipick.v1" and options.java_multiple_files, module.__name__
        assert options.objc_class_prefix == "MPK" and options.swift_prefix == "MPK", module.__name__
        assert options.go_package.endswith("/modipick/v1;modipickv1"), module.__name__


def test_times_are_timestamps_with_the_float_kept_for_older_readers():
    from modipick.v1 import common_pb2

    fields = common_pb2.Profile.DESCRIPTOR.fields_by_name
    assert fields["updated_at"].message_type.full_name == "google.protobuf.Timestamp"
    assert fields["updated_at_unix"].GetOptions().deprecated


def test_the_profiler_stamps_profiles_with_a_timestamp():
    from modipick.core import ModelProfile
    from modipick.profiler.service import profile_message

    message = profile_message(ModelProfile(name="m", declared_accuracy=90.0, mean_ms=5.0, updated_at=1700000000.25))
    assert message.updated_at.ToNanoseconds() == 1_700_000_000_250_000_000
    assert not profile_message(ModelProfile(name="m", declared_accuracy=90.0, mean_ms=5.0)).HasField("updated_at")
