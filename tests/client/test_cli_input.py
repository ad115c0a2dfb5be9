"""`modipick infer` refuses bad files and flags with exit code 2 and one line, before any network."""

import numpy as np
import pytest

from modipick.client.cli import load_image, main


@pytest.mark.parametrize("content, suffix, message", [
    (None, ".png", "cannot read"), (b"", ".png", "file is empty"), (b"hello world", ".png", "not a PNG or JPEG"),
    (b"not numpy", ".npy", "not a valid .npy")])
def test_bad_image_file_exits_2_with_one_line(tmp_path, capsys, content, suffix, message):
    path = tmp_path / f"img{suffix}"
    if content is not None:
        path.write_bytes(content)
    assert main([str(path), "--sla", "150", "--target", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and str(path) in err


@pytest.mark.parametrize("args, message", [(["--sla", "abc"], "--sla"), (["--label", "x"], "--label")])
def test_bad_flags_exit_2_with_one_line(tmp_path, capsys, args, message):
    path = tmp_path / "a.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(SystemExit) as exit_:
        main([str(path), *args])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


@pytest.mark.parametrize("sla", ["0", "-5", "nan", "1e9"])
def test_impossible_sla_exits_2_before_sending(tmp_path, capsys, sla):
    path = tmp_path / "a.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n")
    assert main([str(path), "--sla", sla, "--target", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "sla_ms" in err


def test_npy_files_load_as_arrays(tmp_path):
    path = tmp_path / "digit.npy"
    np.save(path, np.ones((8, 8), np.float32))
    assert load_image(str(path)).shape == (8, 8)


def test_unreachable_selector_exits_1(tmp_path, capsys):
    path = tmp_path / "a.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n")
    assert main([str(path), "--sla", "200", "--target", "127.0.0.1:1", "--connect-timeout", "0.5"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "127.0.0.1:1" in err
