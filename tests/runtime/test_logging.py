"""bound_request_id: structlog's bound_contextvars for the request id, restoring what was bound."""

from __future__ import annotations

import structlog
from structlog.contextvars import bind_contextvars, clear_contextvars, get_contextvars
from structlog.testing import capture_logs

from modipick.runtime.logging import bound_request_id


def test_the_request_id_is_bound_inside_and_restored_after() -> None:
    clear_contextvars()
    bind_contextvars(request_id="outer", client_id="app-1")
    with bound_request_id("inner"):
        assert get_contextvars() == {"request_id": "inner", "client_id": "app-1"}
        with bound_request_id("innermost"):
            assert get_contextvars()["request_id"] == "innermost"
        assert get_contextvars()["request_id"] == "inner"
    assert get_contextvars() == {"request_id": "outer", "client_id": "app-1"}
    clear_contextvars()
    with bound_request_id("only"):
        pass
    assert "request_id" not in get_contextvars()


def test_logs_inside_carry_the_request_id() -> None:
    clear_contextvars()
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        with bound_request_id("r-42"):
            structlog.get_logger("t").info("inside")
        structlog.get_logger("t").info("outside")
    assert [(e["event"], e.get("request_id")) for e in logs] == [("inside", "r-42"), ("outside", None)]


def _json_lines(text: str) -> list[dict]:
    import json

    lines = [line for line in text.splitlines() if line.strip()]
    return [json.loads(line) for line in lines]  # raises on any line that is not JSON



def _undo_configure_logging() -> None:
    """What configure_logging set up: the bridge handler, the root level, captured warnings, structlog."""
    import logging

    from modipick.runtime.logging import _BridgeHandler

    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _BridgeHandler)]:
        root.removeHandler(handler)
    root.setLevel(logging.WARNING)
    logging.captureWarnings(False)
    structlog.reset_defaults()

def test_json_mode_renders_grpc_redis_asyncio_and_warnings_records_as_json() -> None:
    import asyncio
    import io
    import logging
    import warnings

    from modipick.runtime.logging import BRIDGED_LOGGERS, configure_logging

    assert {"grpc", "redis", "asyncio"} <= set(BRIDGED_LOGGERS)
    stream = io.StringIO()
    configure_logging(json=True, level="info", stream=stream)
    show_warning = warnings.showwarning  # read at once: see below
    try:
        structlog.get_logger("modipick.test").info("own line", answer=42)
        logging.getLogger("grpc.aio._server").warning("server %s stopped", "s-1")
        logging.getLogger("redis.connection").error("connection lost", extra={})
        logging.getLogger("redis.connection").debug("below the level: dropped")
        # configure_logging routes warnings into logging; the hook is called directly, since any thread
        # leaving a warnings.catch_warnings() block (libraries do) puts back the hook it saw on entry
        assert show_warning.__module__ == "logging"
        show_warning("old flag", DeprecationWarning, __file__, 61)

        async def fail() -> None:
            raise RuntimeError("boom")

        async def leave_a_failed_task() -> None:
            task = asyncio.get_running_loop().create_task(fail())
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            del task  # never awaited: asyncio logs "Task exception was never retrieved" when it is collected

        asyncio.run(leave_a_failed_task())
        import gc

        gc.collect()
        with bound_request_id("r-7"):
            logging.getLogger("grpc").info("password=%s", "hunter2", extra={"token": "t"})
    finally:
        _undo_configure_logging()

    records = _json_lines(stream.getvalue())
    by_event = {r["event"]: r for r in records}
    assert by_event["own line"]["answer"] == 42
    assert by_event["server s-1 stopped"]["logger"] == "grpc.aio._server"
    assert by_event["server s-1 stopped"]["level"] == "warning"
    assert by_event["connection lost"]["logger"] == "redis.connection"
    assert not any("dropped" in r["event"] for r in records)
    assert any(r.get("logger") == "py.warnings" and "old flag" in r["event"] for r in records)
    task_line = next(r for r in records if r.get("logger") == "asyncio")
    assert "never retrieved" in task_line["event"] and "RuntimeError: boom" in task_line["exception"]
    assert by_event["password=hunter2"]["request_id"] == "r-7" and by_event["password=hunter2"]["token"] == "***"


def test_warnings_are_captured_again_after_a_catch_warnings_block_put_the_old_hook_back() -> None:
    import io
    import logging
    import warnings

    from modipick.runtime.logging import configure_logging

    original = warnings.showwarning
    try:
        logging.captureWarnings(True)  # an earlier configuration ...
        warnings.showwarning = original  # ... undone by a catch_warnings() exit, as logging never hears
        configure_logging(json=True, level="info", stream=io.StringIO())
        assert warnings.showwarning.__module__ == "logging"
    finally:
        _undo_configure_logging()
        warnings.showwarning = original
