"""Print the third-party requirements of one image role, read from pyproject.toml: the project's
dependencies plus the extras that role installs, one per line (`pip install --requirement`).

The image build installs these first, in a layer that changes only with pyproject.toml and
constraints.txt, then the package itself with `--no-deps`: a code change never reinstalls TensorFlow.

    python requirements.py ROLE [PYPROJECT]
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

# Which extras each image role installs. TensorFlow (the `executor` extra) only where a model runs or
# is built; the load generator needs plots and the digits dataset (scikit-learn), not TensorFlow.
ROLE_EXTRAS: dict[str, tuple[str, ...]] = {
    "selector": ("tracing",),
    "profiler": ("tracing",),
    "executor": ("executor", "tracing"),
    "loadgen": ("loadgen",),
    "zoo": ("executor",),
}
_SELF_REFERENCE = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*\[([^\]]+)\]\s*$")


def requirements(role: str, pyproject: dict) -> list[str]:
    if role not in ROLE_EXTRAS:
        raise KeyError(f"unknown role {role!r}: one of {', '.join(sorted(ROLE_EXTRAS))}")
    project = pyproject["project"]
    optional = project.get("optional-dependencies", {})
    out: list[str] = list(project.get("dependencies", []))
    pending, seen = list(ROLE_EXTRAS[role]), set()
    while pending:
        extra = pending.pop(0)
        if extra in seen:
            continue
        seen.add(extra)
        for requirement in optional[extra]:
            own = _SELF_REFERENCE.match(requirement)
            if own and own.group(1) == project["name"]:  # "modipick[tracing]" names another extra
                pending += [e.strip() for e in own.group(2).split(",")]
            elif requirement not in out:
                out.append(requirement)
    return out


def main(argv: list[str]) -> int:
    if not 1 <= len(argv) <= 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    path = Path(argv[1] if len(argv) > 1 else "pyproject.toml")
    try:
        lines = requirements(argv[0], tomllib.loads(path.read_text(encoding="utf-8")))
    except KeyError as exc:
        print(f"requirements.py: {exc.args[0]}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
