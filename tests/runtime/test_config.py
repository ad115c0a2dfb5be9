import pytest

from modipick.runtime.config import EnvArgumentParser, positive_int


def parser(environ):
    p = EnvArgumentParser(prog="modipick thing", environ=environ)
    p.add_option("--max-concurrency", type=positive_int, default=4)
    p.add_option("--admin-token", secret=True)
    return p


def test_env_default_and_flag_override():
    assert parser({"MODIPICK_MAX_CONCURRENCY": "7"}).parse_args([]).max_concurrency == 7
    assert parser({"MODIPICK_MAX_CONCURRENCY": "7"}).parse_args(["--max-concurrency", "3"]).max_concurrency == 3


def test_bad_env_value_exits_2_with_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        parser({"MODIPICK_MAX_CONCURRENCY": "0"}).parse_args([])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "MODIPICK_MAX_CONCURRENCY" in err


def test_secret_is_not_echoed(capsys):
    p = parser({"MODIPICK_ADMIN_TOKEN": "hunter2"})
    assert p.parse_args([]).admin_token == "hunter2"
    assert "hunter2" not in p.format_help()
