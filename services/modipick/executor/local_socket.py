"""The Executor's local socket (`--execute-socket PATH`): ExecuteStream's sessions for a Selector
on the same host, without a gRPC hop (framing and why: modipick.runtime.frames).

Each connection is one stream session, run by the same `ExecutorService.serve_stream` as a gRPC
ExecuteStream: same admission, deadlines, refusals-as-answers and observations. A connection that
breaks the framing is closed and logged; the others go on. On shutdown the listener closes first,
sessions answer new calls UNAVAILABLE and end once their running calls are answered, and the
socket file is removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import stat

import structlog

from modipick.executor.service import ExecutorService
from modipick.runtime.frames import FrameConnection, FrameError
from modipick.v1 import executor_pb2

log = structlog.get_logger("modipick.executor.local_socket")


class SocketInUse(OSError):
    """Another process listens on the socket path."""


def _clear_stale(path: str) -> None:
    """A socket file left by a process that died is removed; a live one or a non-socket is not."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise SocketInUse(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)
        return
    finally:
        probe.close()
    raise SocketInUse(f"{path}: another process is listening on it")


class LocalExecuteSocket:
    def __init__(self, path: str, service: ExecutorService, *, max_message_bytes: int) -> None:
        self.path = path
        self._service = service
        self._max_bytes = max_message_bytes
        self._server: asyncio.AbstractServer | None = None
        self._sessions: set[asyncio.Task] = set()

    async def start(self) -> None:
        _clear_stale(self.path)
        self._server = await asyncio.get_running_loop().create_unix_server(self._connection, self.path)
        os.chmod(self.path, 0o660)  # the Selector runs as the same user or group
        log.info("execute socket listening", path=self.path)

    def close_listener(self) -> None:
        if self._server is not None:
            self._server.close()

    def _connection(self) -> FrameConnection:
        connection = FrameConnection(executor_pb2.ExecuteStreamRequest, self._max_bytes, first=False)
        task = asyncio.ensure_future(self._serve(connection))
        self._sessions.add(task)
        task.add_done_callback(self._sessions.discard)
        return connection

    async def _serve(self, connection: FrameConnection) -> None:
        try:
            await connection.greeted()
            await self._service.serve_stream(connection, connection)
        except FrameError as exc:
            log.warning("execute socket session closed", reason=str(exc))
        except ConnectionError:
            pass  # the Selector went away: its calls were given up with it
        except Exception:  # a bug: this connection ends, the others go on
            log.exception("execute socket session failed")
        finally:
            connection.close()

    async def stop(self, grace_s: float) -> None:
        self.close_listener()
        if self._sessions:
            _, late = await asyncio.wait(set(self._sessions), timeout=grace_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
