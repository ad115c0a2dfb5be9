"""structlog configuration: JSON lines for machines, console rendering on a terminal.
The request id travels in structlog's contextvars (bound per call by the services).

Libraries log through the standard `logging` module (grpc, redis, asyncio, warnings): a handler on
the root logger renders their records with the same processors and renderer, so in JSON mode every
line a process writes through Python is one JSON object."""

from __future__ import annotations

import logging
import sys

import structlog

_SECRET_KEYS = ("password", "token", "secret", "authorization")


def _redact(_, __, event_dict: dict) -> dict:
    for key in list(event_dict):
        if any(s in key.lower() for s in _SECRET_KEYS):
            event_dict[key] = "***"
    return event_dict


# Loggers are finalised on first use (a few us off every log call). A process that configures
# logging more than once and inspects it (the test suite) turns this off: a cached logger keeps the
# configuration of its first use.
CACHE_LOGGERS = True

# Standard-library loggers of the libraries the services use; they propagate to the root handler.
BRIDGED_LOGGERS = ("grpc", "redis", "asyncio", "py.warnings")


class _BridgeHandler(logging.StreamHandler):
    """The root handler configure_logging installs (found again and replaced on a second call)."""


class _StandardError:
    """sys.stderr as it is at each write, not the object it was at configuration: a stream swapped
    and closed since (a test's capture, a daemon's redirect) must not turn every later log line into
    a ValueError inside the code that logs."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def configure_logging(*, json: bool | None = None, level: str = "info", stream=None) -> None:
    stream = stream or _StandardError()
    if json is None:
        json = not stream.isatty()
    numeric = logging.getLevelName(level.upper())
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=CACHE_LOGGERS,
    )
    _bridge_stdlib(stream, numeric, renderer)


def _bridge_stdlib(stream, level: int, renderer) -> None:
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.ExtraAdder(),
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = _BridgeHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _BridgeHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in BRIDGED_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)  # inherit the root's level
    # captureWarnings(True) does nothing while logging believes it already captures; a
    # warnings.catch_warnings() block left since (pytest's, a library's) may have put the old hook back
    logging.captureWarnings(False)
    logging.captureWarnings(True)


class bound_request_id:
    """`with bound_request_id(rid):` binds `request_id` for structlog's contextvars and restores the
    previous value on exit, like `structlog.contextvars.bound_contextvars(request_id=rid)`; a plain
    class rather than a generator context manager, as it runs on every request (1 us against 5)."""

    __slots__ = ("_request_id", "_tokens")

    def __init__(self, request_id: str) -> None:
        self._request_id = request_id

    def __enter__(self) -> None:
        self._tokens = structlog.contextvars.bind_contextvars(request_id=self._request_id)

    def __exit__(self, *_exc: object) -> None:
        structlog.contextvars.reset_contextvars(**self._tokens)
