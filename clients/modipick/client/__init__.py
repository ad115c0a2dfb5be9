"""modipick client SDK: sync and asyncio clients for the Selector, typed errors, and the
`modipick infer` CLI. Imports neither the services nor TensorFlow."""

from modipick.client.aio import AsyncModiPickClient
from modipick.client.errors import InvalidRequest, ModiPickError, Overloaded, SlaExpired, Unavailable
from modipick.client.options import ClientOptions, ClientTls, RetryPolicy
from modipick.client.result import InferResult, Timings
from modipick.client.sync import ModiPickClient

__all__ = ["AsyncModiPickClient", "ClientOptions", "ClientTls", "InferResult", "InvalidRequest",
           "ModiPickClient", "ModiPickError", "Overloaded", "RetryPolicy", "SlaExpired", "Timings", "Unavailable"]
