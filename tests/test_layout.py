"""House rules that a refactor could silently break."""

import collections
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_test_module_basenames_are_unique():
    names = collections.Counter(p.name for p in (ROOT / "tests").rglob("test_*.py"))
    assert [n for n, c in names.items() if c > 1] == []


def test_selector_profiler_client_loadgen_and_sim_never_import_tensorflow():
    modules = ["modipick.selector.app", "modipick.profiler.app", "modipick.client", "modipick.client.cli",
               "modipick.sim.cli", "modipick.loadgen.cli", "modipick.stores", "modipick.core", "modipick.cli.up"]
    code = ("import sys\n" + "".join(f"import {m}\n" for m in modules) +
            "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tensorflow_serving')]\n"
            "print(','.join(bad))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_core_has_no_io_dependencies():
    for path in (ROOT / "services" / "modipick" / "core").rglob("*.py"):
        text = path.read_text()
        for banned in ("import grpc", "import redis", "tensorflow", "from modipick.stores", "from modipick.v1"):
            assert banned not in text, f"{path.relative_to(ROOT)} uses {banned!r}"


def test_no_namespace_init_files():
    for root in ("protos", "services", "clients", "loadgen"):
        assert not (ROOT / root / "modipick" / "__init__.py").exists()


def test_no_file_refers_to_a_machine_path_or_a_folder_beside_the_checkout():
    """Data the product needs ships inside the repository (with source and licence); nothing reads
    a sibling folder of the checkout or an absolute path of one machine."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    banned = ("../" + "shared", "/" + "work/", "/" + "home/", "/" + "Users/")  # split: not a hit here
    hits = []
    for name in files.decode().split("\0"):
        path = ROOT / name
        if not name or not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        hits += [f"{name}: {b}" for b in banned if b in text]
    assert hits == []
