"""The wire contract beside the messages, for every side of it (services, client SDK, load
generator): what travels in gRPC metadata, the limits both ends hold, and the names by which
clients and tools report the enums' values. Plain constants: it imports nothing but the messages."""

from __future__ import annotations

from modipick.v1 import common_pb2, selector_pb2

# gRPC metadata keys
REQUEST_ID_KEY = "x-request-id"                       # also in the messages' request_id fields
DEADLINE_SLACK_KEY = "x-modipick-deadline-slack-ms"   # the client waits this long past its SLA
# the request's client_id again, for a balancer that keeps a client's calls on one Selector replica
# (Envoy hashes it: deploy/); a balancer cannot read the message
CLIENT_ID_KEY = "x-modipick-client-id"

# limits
DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024          # both directions, every service and the SDK
MAX_REQUEST_ID_CHARS = 128
MAX_SLA_MS = 3_600_000.0                              # one hour: anything longer is a unit mistake

# enum values by name
REASON_NAMES = {common_pb2.SELECTION_REASON_UNSPECIFIED: "unspecified", common_pb2.SELECTION_REASON_BASE: "base",
                common_pb2.SELECTION_REASON_EXPLORED: "explored", common_pb2.SELECTION_REASON_FALLBACK: "fallback"}
REASONS_BY_NAME = {name: value for value, name in REASON_NAMES.items()}
# whose return-leg model a decision used ("unspecified": a Selector that learns no return legs)
RETURN_LEG_SOURCE_NAMES = {selector_pb2.RETURN_LEG_SOURCE_UNSPECIFIED: "unspecified",
                           selector_pb2.RETURN_LEG_SOURCE_CLIENT: "client",
                           selector_pb2.RETURN_LEG_SOURCE_CLASS: "class",
                           selector_pb2.RETURN_LEG_SOURCE_PRIOR: "prior"}
DISPOSITION_NAMES = {selector_pb2.DISPOSITION_UNSPECIFIED: "unspecified", selector_pb2.DISPOSITION_SERVED: "served",
                     selector_pb2.DISPOSITION_RUN_ON_DEVICE: "run_on_device"}


def client_id_header(client_id: str) -> tuple[tuple[str, str], ...]:
    """The CLIENT_ID_KEY metadata for `client_id`: none when it is empty or cannot travel as a
    header value (printable ASCII, MAX_REQUEST_ID_CHARS at most); the message carries it anyway."""
    if client_id and len(client_id) <= MAX_REQUEST_ID_CHARS and client_id.isascii() and client_id.isprintable():
        return ((CLIENT_ID_KEY, client_id),)
    return ()


def request_id_problem(request_id: str) -> str:
    """Why `request_id` cannot travel on (it goes into gRPC metadata downstream), or ""."""
    if len(request_id) > MAX_REQUEST_ID_CHARS or not (request_id.isascii() and request_id.isprintable()):
        return f"request_id: at most {MAX_REQUEST_ID_CHARS} printable ASCII characters (e.g. a uuid4 hex)"
    return ""
