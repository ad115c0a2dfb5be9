"""House rules that a refactor could silently break."""

import collections
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_test_module_basenames_are_unique():
    names = collections.Counter(p.name for p in (ROOT / "tests").rglob("test_*.py"))
    assert [n for n, c in names.items() if c > 1] == []


def lint_imports(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(pathlib.Path(sys.executable).with_name("lint-imports")), "--no-cache", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_the_layering_rules_hold():
    """The import-linter contracts in pyproject.toml ([tool.importlinter]): core is pure, the Selector
    and Profiler never import TensorFlow, the Executor no store, the client no service, runtime and
    the protos nothing above them."""
    out = lint_imports()
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


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


def test_docs_and_code_speak_of_the_product_not_of_its_history():
    """Docs, help texts, docstrings and comments state what the product does and what was measured;
    issue numbers and numbered work periods belong in commit messages, not in tracked text."""
    files = subprocess.run(["git", "ls-files", "-z", "--", "*.py", "*.md", "Makefile"], cwd=ROOT,
                           capture_output=True, check=True).stdout
    history = re.compile(r"\b(?:[Ss]ession|[Ii]ssue)[ -]?[0-9]+\b")
    hits = []
    for name in files.decode().split("\0"):
        path = ROOT / name
        if not name or not path.is_file():
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            hits += [f"{name}:{number}: {m.group(0)}" for m in history.finditer(line)]
    assert hits == []


TEST_THEMES = {"reliability", "security", "observability"}  # tests/README.md: suites with their own rig


def test_test_folders_mirror_the_modules_and_helpers_say_where_they_belong():
    """tests/README.md: a test folder is a module's (or protos/, deploy/, a theme's); a plain helper
    is named after its folder (`<folder>_*.py`), a shared one is a `tests/*_support.py`, a fixture
    plugin a `tests/fixtures_*.py`."""
    modules = {p.name for root in ("services", "clients", "loadgen")
               for p in (ROOT / root / "modipick").iterdir() if p.is_dir() and p.name != "__pycache__"}
    allowed = modules | {"protos", "deploy"} | TEST_THEMES
    tests = ROOT / "tests"
    folders = {p.parent.relative_to(tests).parts[0] for p in tests.rglob("test_*.py") if p.parent != tests}
    assert sorted(folders - allowed) == []
    misnamed = [p.name for p in tests.glob("*.py")
                if not (p.name in ("conftest.py", "test_layout.py") or p.name.startswith("fixtures_")
                        or p.name.endswith("_support.py"))]
    for folder in folders:
        misnamed += [f"{folder}/{p.name}" for p in (tests / folder).glob("*.py")
                     if not (p.name == "conftest.py" or p.name.startswith(("test_", f"{folder}_")))]
    assert misnamed == []
