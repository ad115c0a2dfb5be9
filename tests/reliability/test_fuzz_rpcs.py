"""Property/fuzz test over every RPC's request messages: at least 2,000 cases per RPC (Selector,
Profiler, Executor), each answered with OK or a status that fits, with a message saying what is
wrong, and every service still up afterwards.

Cases are hypothesis-generated messages (NaN, infinite, negative and absurd numbers; send times
now, skewed or nonsensical; odd and over-long strings; wrong tensors and random image bytes;
unknown models, versions, labels and policies; a missing or wrong admin token; valid, expired,
wrongly signed and garbage client JWTs; signed, re-signed, edited and unsigned outcome tickets; a
missing, wrong or another role's service token), a few raw byte strings, and byte-level mutants
of every generated message's wire form (flipped, truncated, inserted, doubled bytes). What does not decode must get INVALID_ARGUMENT ("undecodable ...
request"); no case may ever meet INTERNAL or UNKNOWN (an unhandled error). To stay fast the
Selector and Profiler run in-process on memory stores, E3 is the Executor, and each hypothesis
example sends its cases concurrently. Both run with their defences on (docs/security.md): the
Selector authenticates clients (unauthenticated callers are the anonymous client), signs tickets
and rate-limits reports; the Profiler takes observations and outcomes only with their roles' tokens
and bounds each client's labels.
"""

from __future__ import annotations

import collections
import math
import os
import time
from dataclasses import dataclass

import grpc
import numpy as np
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modipick.core import ModelProfile
from modipick.core.policies import LIVE_POLICIES
from modipick.profiler.probe import blank_png
from modipick.runtime.auth import bearer
from modipick.runtime.identity import ANONYMOUS_CLIENT_ID
from modipick.selector.tickets import TicketKeys, TicketSigner, served_from_ticket
from modipick.stores import InMemoryProfileStore
from modipick.v1 import (common_pb2, executor_pb2, executor_pb2_grpc, profiler_pb2, profiler_pb2_grpc,
                         selector_pb2, selector_pb2_grpc)
from reliability_support import ADMIN_TOKEN, E3_MODELS, SERVING, digit_input, health_status

CASES = int(os.environ.get("MODIPICK_FUZZ_CASES", "2000"))  # per RPC; CI runs the default
PER_EXAMPLE = 4   # generated messages per hypothesis example, sent concurrently ...
MUTANTS = 5       # ... each with this many byte-level mutants of its wire form
REAL = E3_MODELS
Code = grpc.StatusCode
TALLY: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
EXECUTOR_TOKEN, SELECTOR_TOKEN = "fuzz-executor-5e1", "fuzz-selector-9a3"
JWT_SECRET, FUZZ_SUBJECT = "fuzz-jwt-secret-0123456789abcdef0123", "lte/fuzzer"
TICKET_KEYS = TicketKeys("k2", b"fuzz-ticket-key-current", "k1", b"fuzz-ticket-key-previous")


def _jwt(subject: str = FUZZ_SUBJECT, *, key: str = JWT_SECRET, expires_in_s: float = 3600.0) -> str:
    import jwt

    return jwt.encode({"sub": subject, "exp": int(time.time() + expires_in_s)}, key, algorithm="HS256")


# a client's credentials: mostly none (the anonymous client) or a valid token, else a bad one
CLIENT_TOKENS = {"jwt": _jwt(), "expired": _jwt(expires_in_s=-60.0), "forged": _jwt(key="not-the-secret-0123456789abcdef0123"),
                 "reserved": _jwt("anonymous/x"), "garbage": "e30.e30.x" + "A" * 300}
SIGNERS = [TicketSigner(TicketKeys("k2", TICKET_KEYS.current)), TicketSigner(TicketKeys("k1", TICKET_KEYS.previous)),
           TicketSigner(TicketKeys("k7", b"fuzz-ticket-key-unknown"))]


def owner(cred: str) -> str:
    """The client id the Selector binds a call with these credentials to."""
    return FUZZ_SUBJECT if cred == "jwt" else ANONYMOUS_CLIENT_ID


# -- strategies ------------------------------------------------------------------------------------
def mostly(valid, *invalid, odds: int = 4):
    """`valid` `odds` times as often as the alternatives: enough cases get past the first check
    to exercise what lies behind it."""
    return st.integers(0, odds).flatmap(lambda i: st.one_of(*invalid) if i == odds else valid)


numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([0.0, -0.0, -1.0, 1e-300, 0.5, 5.0, 250.0, 2000.0, 3.6e6, 3.6e6 + 1, 1e12, 1e308]))
slas = mostly(st.floats(1.0, 3000.0), numbers)
names = mostly(st.sampled_from(REAL), st.sampled_from(["flaky", "", "nope", "x" * 300, "../../etc", "m:1"]),
               st.text(max_size=80))
versions = mostly(st.sampled_from([0, 1]), st.sampled_from([2, -1]), st.integers(-2**63, 2**63 - 1))
texts = mostly(st.just(""), st.text(max_size=60), st.sampled_from(["x" * 5000]), odds=2)
refs = st.builds(lambda n, v, label: common_pb2.ModelRef(name=n, version=v, version_label=label), names, versions,
                 mostly(st.just(""), st.text(max_size=30)))
policies = mostly(st.just(""), st.sampled_from([*LIVE_POLICIES, "oracle"]), st.text(max_size=100))
tokens = st.sampled_from(["right"] * 6 + ["none", "wrong"])
client_creds = mostly(st.sampled_from(["none", "jwt"]), st.sampled_from(sorted(CLIENT_TOKENS)))


def service_tokens(right: str):
    """The role's own token mostly; else none, a wrong one, or another role's."""
    return mostly(st.just(("token", right)), st.sampled_from([("token", ""), ("token", "guessed"),
                                                              ("token", ADMIN_TOKEN),
                                                              ("token", EXECUTOR_TOKEN + SELECTOR_TOKEN)]))


@dataclass(frozen=True)
class Stamp:
    """A client send time: relative to the moment of sending (ms), absent, or a raw Timestamp."""

    offset_ms: float | None = 0.0
    raw: tuple[int, int] | None = None

    def apply(self, message, field: str = "client_send_time") -> None:
        if self.raw is not None:
            getattr(message, field).CopyFrom(Timestamp(seconds=self.raw[0], nanos=self.raw[1]))
        elif self.offset_ms is not None:
            getattr(message, field).FromNanoseconds(time.time_ns() + int(self.offset_ms * 1e6))


stamps = mostly(st.just(Stamp(0.0)), st.just(Stamp(None)),
    st.builds(Stamp, st.sampled_from([-1e9, -3.6e6, -5000.0, -100.0, 500.0, 2000.0, 3.6e6, 1e12])),
    st.builds(lambda s, n: Stamp(raw=(s, n)), st.integers(-2**62, 2**62), st.integers(-2**31, 2**31 - 1)))

PNG = blank_png(8, 8)
IMAGES = [PNG, blank_png(64, 64, 3), PNG[:30], b"\x89PNG\r\n\x1a\n" + PNG[8:16] + (100_000).to_bytes(4, "big") * 2
          + PNG[24:], b"\xff\xd8\xff\xe0" + bytes(40), b"GIF89a" + bytes(20), b"BM" + bytes(60)]
ITEM = {"float32": 4, "uint8": 1}


@st.composite
def inputs(draw) -> common_pb2.Input | None:
    kind = draw(mostly(st.just("valid"), st.sampled_from(["none", "image", "tensor"]), odds=2))
    if kind == "none":
        return None
    if kind == "image":
        return common_pb2.Input(encoded_image=draw(st.one_of(st.binary(max_size=300), st.sampled_from(IMAGES))))
    if kind == "valid":
        values = np.random.default_rng(draw(st.integers(0, 2**32))).uniform(0, 16, 64).astype(np.float32)
        odd = draw(mostly(st.none(), st.sampled_from([np.nan, np.inf, -1e38, 1e30])))
        if odd is not None:
            values[draw(st.integers(0, 63))] = odd
        shape = draw(st.sampled_from([[1, 8, 8, 1], [8, 8, 1], [8, 8]]))
        return common_pb2.Input(tensor=common_pb2.Tensor(dtype="float32", shape=shape, content=values.tobytes()))
    dtype = draw(st.one_of(st.sampled_from(["float32", "uint8", "int64", "float64", ""]), st.text(max_size=40)))
    shape = draw(st.one_of(st.sampled_from([[1, 8, 8, 1], [2, 8, 8, 1], [1, 3, 3, 1], [1, 8, 8, 3], [64], []]),
                           st.lists(st.integers(-3, 2**40), max_size=12)))
    size = math.prod(shape) * ITEM.get(dtype, 4) if shape and min(shape) > 0 else None
    exact = size is not None and size <= 4096 and draw(st.booleans())
    content = bytes(size) if exact else draw(st.binary(max_size=300))
    return common_pb2.Input(tensor=common_pb2.Tensor(dtype=dtype, shape=shape, content=content))


@dataclass(frozen=True)
class Raw:
    data: bytes


def maybe_raw(strategy):
    return mostly(strategy, st.builds(Raw, st.binary(max_size=200)), odds=9)


@st.composite
def infer_cases(draw):
    message = selector_pb2.InferRequest(request_id=draw(texts), sla_ms=draw(slas), policy=draw(policies),
                                        client_id=draw(texts))
    model_input = draw(inputs())
    if model_input is not None:
        message.input.CopyFrom(model_input)
    return message, (draw(stamps), draw(client_creds))


@st.composite
def select_cases(draw):
    return selector_pb2.SelectRequest(request_id=draw(texts), sla_ms=draw(slas), policy=draw(policies),
                                      client_id=draw(texts)), (draw(stamps), draw(client_creds))


@st.composite
def tickets(draw, request_id: str, client_id: str):
    """An echoed OutcomeTicket: mostly one a Selector could have set for this report, else odd."""
    ticket = selector_pb2.OutcomeTicket(
        request_id=draw(mostly(st.just(request_id), texts)), client_id=draw(mostly(st.just(client_id), texts)),
        upload_ms=draw(mostly(st.floats(0.0, 500.0), numbers)),
        after_decision_ms=draw(mostly(st.floats(0.0, 5.0), numbers)),
        server_ms=draw(mostly(st.floats(5.0, 50.0), numbers)),
        basis_owner=draw(mostly(st.sampled_from([0, 1, 2]), st.integers(-2**31, 2**31 - 1))))
    basis = draw(st.one_of(st.none(), mostly(st.floats(0.0, 500.0), numbers)))
    if basis is not None:
        ticket.basis_ms = basis
    elapsed = draw(st.one_of(st.none(), mostly(st.floats(-2000.0, 2000.0), numbers)))
    if elapsed is not None:
        ticket.send_elapsed_ms = elapsed
    how = draw(mostly(st.just("signed"), st.sampled_from(["previous", "unknown key", "edited", "unsigned", "junk"])))
    if how in ("signed", "previous", "unknown key", "edited"):
        signer = SIGNERS[("signed", "previous", "unknown key").index(how) if how != "edited" else 0]
        try:
            signed = signer.ticket(ticket.request_id, served_from_ticket(ticket))
        except (KeyError, ValueError):  # an odd basis_owner: no Served to sign
            signed = None
        if signed is not None:
            ticket = signed
            if how == "edited":
                ticket.server_ms += 1.0
    elif how == "junk":
        ticket.signature, ticket.key_id = draw(st.binary(max_size=40)), draw(texts)
    return ticket


@st.composite
def report_cases(draw):
    cred = draw(client_creds)
    message = selector_pb2.ReportOutcomeRequest(request_id=draw(texts), model=draw(refs), e2e_ms=draw(numbers),
                                                sla_ms=draw(numbers), client_id=draw(texts),
                                                predicted_label=draw(st.integers(-2**31, 2**31 - 1)))
    label = draw(st.one_of(st.none(), st.integers(-2**31, 2**31 - 1)))
    if label is not None:
        message.true_label = label
    if draw(st.booleans()):  # well formed up to the ticket: the signature, replay and rate checks decide
        message.request_id = f"rep-{draw(st.integers(0, 10**9))}"
        message.model.CopyFrom(common_pb2.ModelRef(name=draw(st.sampled_from(REAL)), version=1))
        message.e2e_ms, message.sla_ms = draw(st.floats(1.0, 2000.0)), draw(st.floats(1.0, 3000.0))
        message.client_id = draw(mostly(st.just(""), st.just(owner(cred))))
        message.true_label = draw(st.integers(0, 9))
    if draw(mostly(st.just(True), st.just(False))):
        message.ticket.CopyFrom(draw(tickets(message.request_id, owner(cred))))
    return message, (None, cred)


@st.composite
def observation_cases(draw):
    batches = []
    for _ in range(draw(st.integers(0, 3))):
        observations = []
        for _ in range(draw(st.integers(0, 4))):
            o = profiler_pb2.Observation(model=draw(refs), queue_ms=draw(numbers), execution_ms=draw(numbers),
                                         request_id=draw(texts), probe=draw(st.booleans()),
                                         failed=draw(st.booleans()),
                                         error_code=draw(st.one_of(st.sampled_from(["", "INTERNAL",
                                                                                    "DEADLINE_EXCEEDED"]),
                                                                   st.text(max_size=20))))
            draw(stamps).apply(o, "observed_at")
            observations.append(o)
        batches.append(profiler_pb2.RecordObservationsRequest(observations=observations))
    return batches, draw(service_tokens(EXECUTOR_TOKEN))


@st.composite
def outcome_cases(draw):
    message = profiler_pb2.RecordOutcomeRequest(request_id=draw(texts), model=draw(refs), e2e_ms=draw(numbers),
                                                sla_ms=draw(numbers), client_id=draw(texts),
                                                predicted_label=draw(st.integers(-2**31, 2**31 - 1)))
    label = draw(st.one_of(st.none(), st.integers(-2**31, 2**31 - 1)))
    if label is not None:
        message.true_label = label
    return message, draw(service_tokens(SELECTOR_TOKEN))


@st.composite
def register_cases(draw):
    return profiler_pb2.RegisterModelRequest(model=draw(refs), declared_accuracy=draw(numbers),
                                             skip_warmup=draw(st.booleans())), draw(tokens)


@st.composite
def deregister_cases(draw):
    return profiler_pb2.DeregisterModelRequest(model=draw(refs)), draw(tokens)


@st.composite
def probe_cases(draw):
    # runs in 1..1000 are real probes (one at a time): small ones, and the bounds around the limit
    runs = draw(mostly(st.integers(-3, 4), st.sampled_from([1001, 2**31 - 1, -2**31]), st.integers(1001, 2**31 - 1)))
    return profiler_pb2.ProbeModelRequest(model=draw(refs), runs=runs), draw(tokens)


@st.composite
def execute_cases(draw):
    message = executor_pb2.ExecuteRequest(request_id=draw(texts), model=draw(refs), probe=draw(st.booleans()),
                                          signature_name=draw(mostly(st.sampled_from(["", "serving_default"]),
                                                                     st.just("nope"), texts)))
    model_input = draw(inputs())
    if model_input is not None:
        message.input.CopyFrom(model_input)
    return message, None


def empty_cases(message_type):
    return st.just((message_type(), None))


# -- the RPCs --------------------------------------------------------------------------------------
AUTH = {Code.UNAUTHENTICATED, Code.PERMISSION_DENIED}


@dataclass(frozen=True)
class Rpc:
    service: str       # selector | profiler | executor
    method: str
    request_type: type
    cases: object      # strategy of (message, extra)
    allowed: frozenset
    streaming: bool = False  # a stream of requests


RPCS = [
    Rpc("selector", "Infer", selector_pb2.InferRequest, infer_cases(),
        frozenset({Code.OK, Code.INVALID_ARGUMENT, Code.RESOURCE_EXHAUSTED, Code.DEADLINE_EXCEEDED, *AUTH})),
    Rpc("selector", "Select", selector_pb2.SelectRequest, select_cases(),
        frozenset({Code.OK, Code.INVALID_ARGUMENT, *AUTH})),
    Rpc("selector", "ReportOutcome", selector_pb2.ReportOutcomeRequest, report_cases(),
        frozenset({Code.OK, Code.INVALID_ARGUMENT, Code.RESOURCE_EXHAUSTED, *AUTH})),
    Rpc("profiler", "RecordObservations", profiler_pb2.RecordObservationsRequest, observation_cases(),
        frozenset({Code.OK, *AUTH}), streaming=True),
    Rpc("profiler", "RecordOutcome", profiler_pb2.RecordOutcomeRequest, outcome_cases(),
        frozenset({Code.OK, Code.INVALID_ARGUMENT, Code.NOT_FOUND, *AUTH})),
    Rpc("profiler", "ListProfiles", profiler_pb2.ListProfilesRequest, empty_cases(profiler_pb2.ListProfilesRequest),
        frozenset({Code.OK})),
    Rpc("profiler", "RegisterModel", profiler_pb2.RegisterModelRequest, register_cases(),
        frozenset({Code.OK, Code.INVALID_ARGUMENT, *AUTH})),
    Rpc("profiler", "DeregisterModel", profiler_pb2.DeregisterModelRequest, deregister_cases(),
        frozenset({Code.OK, Code.INVALID_ARGUMENT, Code.NOT_FOUND, *AUTH})),
    Rpc("profiler", "ListRegisteredModels", profiler_pb2.ListRegisteredModelsRequest,
        empty_cases(profiler_pb2.ListRegisteredModelsRequest), frozenset({Code.OK})),
    Rpc("profiler", "ProbeModel", profiler_pb2.ProbeModelRequest, probe_cases(),
        frozenset({Code.OK, Code.INVALID_ARGUMENT, Code.NOT_FOUND, Code.RESOURCE_EXHAUSTED, Code.DEADLINE_EXCEEDED,
                   *AUTH})),
    Rpc("executor", "Execute", executor_pb2.ExecuteRequest, execute_cases(),
        frozenset({Code.OK, Code.INVALID_ARGUMENT, Code.NOT_FOUND, Code.RESOURCE_EXHAUSTED, Code.DEADLINE_EXCEEDED})),
    Rpc("executor", "ListModels", executor_pb2.ListModelsRequest, empty_cases(executor_pb2.ListModelsRequest),
        frozenset({Code.OK})),
]
PACKAGES = {"selector": "modipick.v1.SelectorService", "profiler": "modipick.v1.ProfilerService",
            "executor": "modipick.v1.ExecutorService"}


@pytest.fixture(scope="module")
def fuzz_targets(rig, e3):
    """In-process Selector and Profiler (memory stores, the real models registered) and E3."""
    from modipick.profiler.accuracy import AccuracyBounds
    from modipick.profiler.app import ProfilerSettings, start_profiler
    from modipick.profiler.lifecycle import LifecycleSettings
    from modipick.runtime.identity import JwtSettings, ServiceCredentials
    from modipick.runtime.identity_interceptors import ClientAuthSettings
    from modipick.selector.app import SelectorSettings, start_selector
    from modipick.selector.report_limits import ReportLimits

    stores = [InMemoryProfileStore(), InMemoryProfileStore()]
    for store in stores:
        for i, name in enumerate(REAL):
            store.register(ModelProfile(name=name, declared_accuracy=80.0 + 5 * i, mean_ms=1.0 + i, samples=10))
    selector = rig.loop.run(start_selector(SelectorSettings(
        executor_target=e3.target, refresh_ms=100.0, ticket_keys=TICKET_KEYS,
        client_auth=ClientAuthSettings(mode="anonymous", jwt=JwtSettings(hs256_secrets=(JWT_SECRET,))),
        report_limits=ReportLimits(rate_per_s=200.0, burst=400)), store=stores[0]))
    profiler = rig.loop.run(start_profiler(ProfilerSettings(
        executor_target=e3.target, discover=False, admin_token=ADMIN_TOKEN, probe_timeout_s=2.0,
        service_credentials=ServiceCredentials(tokens={"executor": EXECUTOR_TOKEN, "selector": SELECTOR_TOKEN}),
        accuracy=AccuracyBounds(max_shift_pct=5.0),
        lifecycle=LifecycleSettings(warmup_runs=0, probe_runs=1)), store=stores[1]))
    targets = {"selector": selector.target, "profiler": profiler.target, "executor": e3.target}
    channels = {k: grpc.insecure_channel(t) for k, t in targets.items()}
    yield channels, targets, stores
    for ch in channels.values():
        ch.close()
    rig.loop.run(selector.stop(0.5))
    rig.loop.run(profiler.stop(0.5))


def _stub(channels, service):
    return {"selector": selector_pb2_grpc.SelectorServiceStub, "profiler": profiler_pb2_grpc.ProfilerServiceStub,
            "executor": executor_pb2_grpc.ExecutorServiceStub}[service](channels[service])


@dataclass(frozen=True)
class Call:
    payload: object     # a message, a list of messages (stream), bytes or a list of bytes (raw)
    metadata: tuple
    raw: bool
    parses: bool        # a raw payload that decodes as the request type
    observations: int = -1  # (RecordObservations, typed) observations sent


def _parses(rpc: Rpc, chunks: list[bytes]) -> bool:
    try:
        for chunk in chunks:
            rpc.request_type.FromString(chunk)
        return True
    except Exception:
        return False


def _prepare(rpc: Rpc, case) -> Call:
    # raw bytes carry the credentials that get them past the identity checks to the decoder
    metadata = {"selector": (), "RecordObservations": bearer(EXECUTOR_TOKEN),
                "RecordOutcome": bearer(SELECTOR_TOKEN)}.get(rpc.service if rpc.service == "selector" else rpc.method,
                                                           bearer(ADMIN_TOKEN))
    if isinstance(case, Raw):
        return Call([case.data] if rpc.streaming else case.data, metadata, True, _parses(rpc, [case.data]))
    message, extra = case
    if rpc.service == "selector":  # (send stamp or None, client credentials)
        stamp, cred = extra
        if stamp is not None:
            stamp.apply(message)
        metadata = () if cred == "none" else bearer(CLIENT_TOKENS[cred])
    elif isinstance(extra, tuple):  # a service token
        metadata = bearer(extra[1]) if extra[1] else ()
    elif extra in ("none", "wrong"):
        metadata = () if extra == "none" else bearer("not-the-token")
    count = sum(len(b.observations) for b in message) if rpc.method == "RecordObservations" else -1
    return Call(message, metadata, False, True, count)


def _mutants(rpc: Rpc, call: Call, rnd, count: int) -> list[Call]:
    """Byte-level mutants of a case's wire form: flipped bytes, truncations, insertions."""
    if call.raw:
        chunks = call.payload if rpc.streaming else [call.payload]
    else:
        chunks = [m.SerializeToString() for m in call.payload] if rpc.streaming else [call.payload.SerializeToString()]
    out = []
    for _ in range(count):
        mutated = []
        for chunk in chunks or [b""]:
            data = bytearray(chunk)
            how = rnd.randrange(4)
            if how == 0 and data:
                for _ in range(rnd.randint(1, 3)):
                    data[rnd.randrange(len(data))] = rnd.randrange(256)
            elif how == 1 and data:
                del data[rnd.randrange(len(data)):]
            elif how == 2:
                at = rnd.randint(0, len(data))
                data[at:at] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 8)))
            else:
                at = rnd.randint(0, len(data))
                data[at:at] = data[:rnd.randint(0, len(data))]  # a repeated field or message, doubled
            mutated.append(bytes(data))
        payload = mutated if rpc.streaming else mutated[0]
        out.append(Call(payload, call.metadata, True, _parses(rpc, mutated)))
    return out


def _start(channels, rpc: Rpc, call: Call):
    if call.raw:
        path = f"/{PACKAGES[rpc.service]}/{rpc.method}"
        if rpc.streaming:
            return channels[rpc.service].stream_unary(path).future(iter(call.payload), timeout=5,
                                                                   metadata=call.metadata)
        return channels[rpc.service].unary_unary(path).future(call.payload, timeout=5, metadata=call.metadata)
    method = getattr(_stub(channels, rpc.service), rpc.method)
    payload = iter(call.payload) if rpc.streaming else call.payload
    return method.future(payload, timeout=5, metadata=call.metadata)


@pytest.mark.parametrize("rpc", RPCS, ids=[f"{r.service}.{r.method}" for r in RPCS])
def test_fuzzed_requests_get_a_fitting_status(fuzz_targets, rpc: Rpc):
    channels, _, stores = fuzz_targets
    for i, name in enumerate(REAL):  # fuzzed DeregisterModel calls may have removed them
        stores[1].register(ModelProfile(name=name, declared_accuracy=80.0 + 5 * i, mean_ms=1.0 + i, samples=10))
    tally = TALLY[f"{rpc.service}.{rpc.method}"]
    tally.clear()

    @settings(max_examples=math.ceil(CASES / (PER_EXAMPLE * (1 + MUTANTS))), derandomize=True, database=None,
              deadline=None, suppress_health_check=list(HealthCheck))
    # use_true_random: mutants mutate serialized messages whose length depends on the wall clock
    # (send-time stamps), so recording their draws would make the data tree inconsistent
    @given(st.lists(maybe_raw(rpc.cases), min_size=PER_EXAMPLE, max_size=PER_EXAMPLE), st.randoms(use_true_random=True))
    def run(cases, rnd):
        calls = []
        for case in cases:
            call = _prepare(rpc, case)
            calls += [call, *_mutants(rpc, call, rnd, MUTANTS)]
        started = [(call, _start(channels, rpc, call)) for call in calls]
        for call, future in started:
            try:
                reply = future.result()
                code, details = Code.OK, ""
            except grpc.RpcError as exc:
                code, details = exc.code(), exc.details() or ""
                reply = None
            tally["cases"] += 1
            tally["mutants" if call.raw else "typed"] += 1
            tally[code.name] += 1
            # undecodable bytes: INVALID_ARGUMENT, unless an admin RPC refused the token first
            allowed = rpc.allowed if (not call.raw or call.parses) else {Code.INVALID_ARGUMENT} | (rpc.allowed & AUTH)
            assert code in allowed, (rpc.method, call, code, details)
            assert code == Code.OK or details, (rpc.method, call, code)
            assert len(details) < 2000, (rpc.method, code, details[:200])
            if rpc.method == "RecordObservations" and reply is not None and not call.raw:
                assert reply.accepted + reply.rejected == call.observations

    run()
    print(f"\nfuzz {rpc.service}.{rpc.method}: {tally['cases']} cases, "
          f"{ {k: v for k, v in tally.items() if k != 'cases'} }")
    assert tally["cases"] >= CASES


def test_every_service_is_still_up_after_the_fuzzing(fuzz_targets, e3, figures):
    channels, targets, _ = fuzz_targets
    for name, target in targets.items():
        assert health_status(target) == SERVING, name
    assert e3.proc.poll() is None
    reply = _stub(channels, "executor").Execute(executor_pb2.ExecuteRequest(
        model=common_pb2.ModelRef(name="cnn-small"), input=digit_input()), timeout=5)
    assert reply.model.version == 1
    send = selector_pb2.InferRequest(input=digit_input(), sla_ms=2000.0)
    send.client_send_time.FromNanoseconds(time.time_ns())
    assert _stub(channels, "selector").Infer(send, timeout=5).disposition == selector_pb2.DISPOSITION_SERVED
    per_rpc = {rpc: dict(counts) for rpc, counts in sorted(TALLY.items())}
    if len(per_rpc) == len(RPCS):
        figures.record("fuzz", cases_per_rpc={rpc: c["cases"] for rpc, c in per_rpc.items()},
                       statuses=per_rpc, minimum=CASES)
