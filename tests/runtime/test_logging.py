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
