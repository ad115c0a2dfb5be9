"""The `modipick` command behaves like the tools people know: `--version`; every subcommand on the
environment-aware parser (`[env MODIPICK_X; default Y]` in its help, `choices` for enumerations);
a bad flag or environment value exits 2 naming it, never with a Python traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata

import pytest

from modipick.cli import COMMANDS
from modipick.cli import main as modipick_main

MODIPICK = [sys.executable, "-c", "import sys; from modipick.cli import main; sys.exit(main(sys.argv[1:]))"]

# each user-facing subcommand, as invoked, with an option that takes its default from the environment
# and an enumeration shown as choices in its help
HELP = {
    "up": (["up"], "MODIPICK_SELECTOR_PORT", "{static_greedy,"),
    "demo": (["demo"], "MODIPICK_REQUESTS", None),
    "sim": (["sim", "run"], "MODIPICK_REQUESTS", "{mirror,independent,paired}"),
    "zoo": (["zoo", "build"], "MODIPICK_SEED", "{digits,imagenet-arch,imagenet-sizes}"),
    "loadgen": (["loadgen", "run"], "MODIPICK_SELECTOR_TARGET", "{direct,realtime,link}"),
    "infer": (["infer"], "MODIPICK_SLA_MS", None),
    "traces": (["traces", "list"], "MODIPICK_FORMAT", "{text,json}"),
}


def test_version_is_the_installed_distributions(capsys):
    assert modipick_main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"modipick {metadata.version('modipick')}"
    assert modipick_main(["-V"]) == 0


def test_every_user_command_is_covered():
    services = {"selector", "profiler", "executor"}  # service entry points: their own tests
    assert set(COMMANDS) - services == set(HELP)


@pytest.mark.parametrize("name", sorted(HELP))
def test_help_names_environment_variables_and_choices(name, capsys, monkeypatch):
    for key in [k for k in os.environ if k.startswith("MODIPICK_")]:
        monkeypatch.delenv(key)
    argv, env_var, choices = HELP[name]
    try:
        code = modipick_main([*argv, "--help"])
    except SystemExit as exit_:
        code = exit_.code
    assert code == 0
    text = " ".join(capsys.readouterr().out.split())  # help wraps lines anywhere
    assert f"[env {env_var}; default" in text
    if choices:
        assert choices in text


BAD_ENVIRONMENT = [
    (["infer", "x.npy"], {"MODIPICK_SLA_MS": "abc"}),
    (["up"], {"MODIPICK_SELECTOR_PORT": "fifty"}),
    (["up"], {"MODIPICK_POLICY": "fastest"}),
    (["demo"], {"MODIPICK_RATE": "-1"}),
    (["sim", "run", "--out", "unused"], {"MODIPICK_REQUESTS": "lots"}),
    (["zoo", "build", "--pool", "digits", "--out", "unused"], {"MODIPICK_SEED": "x"}),
    (["loadgen", "stats", "campus_wifi"], {"MODIPICK_BASE_RTT_MS": "-5"}),
    (["traces", "list"], {"MODIPICK_FORMAT": "xml"}),
]


@pytest.mark.parametrize("argv, environ", BAD_ENVIRONMENT, ids=[" ".join(a[:2]) + " " + next(iter(e))
                                                                  for a, e in BAD_ENVIRONMENT])
def test_a_bad_environment_value_exits_2_naming_it(argv, environ, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODIPICK_")}
    done = subprocess.run([*MODIPICK, *argv], capture_output=True, text=True, env={**env, **environ},
                          cwd=tmp_path, timeout=120)
    name, value = next(iter(environ.items()))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert f"{name}={value!r}" in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.parametrize("argv, flag", [
    (["infer", "x.npy", "--sla", "soon"], "--sla"),
    (["up", "--threshold-ms", "-1"], "--threshold-ms"),
    (["demo", "--policies", "best"], "--policies"),
    (["sim", "run", "--out", "unused", "--return-leg", "sideways"], "--return-leg"),
    (["loadgen", "run", "--rate", "0"], "--rate"),
    (["traces", "list", "--format", "xml"], "--format"),
])
def test_a_bad_flag_exits_2_naming_it(argv, flag, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODIPICK_")}
    done = subprocess.run([*MODIPICK, *argv], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert flag in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
