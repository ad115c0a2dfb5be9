"""Executor errors, each carrying the gRPC status it becomes at the service boundary."""

from __future__ import annotations

import grpc


class ExecutorError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(ExecutorError):
    """Bad shape or dtype, non-finite values, an undecodable image."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class ModelNotFound(ExecutorError):
    """Unknown model, version or version label."""

    code = grpc.StatusCode.NOT_FOUND


class ModelUnavailable(ExecutorError):
    """Known but not AVAILABLE (still loading, failed to load), or the backend is unreachable."""

    code = grpc.StatusCode.UNAVAILABLE


class QueueFull(ExecutorError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class DeadlineExceeded(ExecutorError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class BackendFailure(ExecutorError):
    """The model ran and failed (or the backend answered something we cannot read)."""

    code = grpc.StatusCode.INTERNAL
