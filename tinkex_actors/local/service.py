"""The embedded server's Tinker endpoints: sessions, models, training, sampling, futures.

Each handler validates its request (bad input is a 400 in the service's error shape, naming the
field), then either answers at once (sessions, capabilities) or queues work and answers with a
future (`{"request_id": ...}`) that `retrieve_future` long-polls. Ids follow the service's forms:
a model is `<session_id>:train:<model_seq_id>`, a sampler `<session_id>:sample:<seq>`.
REST listings, telemetry and the fault-control endpoint live in `rest.py`.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from supervisors.library_logging import get_logger
from tinkex_actors import types
from tinkex_actors.local import wire
from tinkex_actors.local.asgi import Router
from tinkex_actors.local.checks import check_adam
from tinkex_actors.local.engine import (
    ModelEntry,
    OrderedWorker,
    SamplerEntry,
    SamplingPool,
    UserError,
)
from tinkex_actors.local.faults import FaultPlan
from tinkex_actors.local.futures import FutureStore
from tinkex_actors.local.guard import MAX_BODY_BYTES
from tinkex_actors.local.http_messages import HTTPError, Request, Response, json_response
from tinkex_actors.local.model import BASE_MODELS, LoraModel, get_base_model
from tinkex_actors.local.storage import (
    CheckpointStore,
    StorageError,
    check_name,
    parse_tinker_path,
)

log = get_logger("tinkex_actors.local")

API = "/api/v1"
ENDED_SESSIONS_LISTED = 1_000
"""How many ended sessions searches and trace exports still find."""
ENDED_HEARTBEATS_KEPT = 64


@dataclass
class ServerSettings:
    """What a test or the CLI can tune on the embedded server."""

    long_poll_timeout_s: float = 30.0
    """How long `retrieve_future` holds a poll before answering 408 (the client waits 45 s)."""
    session_timeout_s: float = 120.0
    """Silence after which a session expires and its models, samplers and futures are freed."""
    gap_timeout_s: float = 30.0
    """How long a request waits for a missing earlier seq_id before the gap is skipped."""
    client_config: dict[str, Any] = field(default_factory=dict)
    """Flags merged into the answer of `client/config` (server-driven client configuration)."""
    dynamic_config: dict[str, Any] = field(default_factory=dict)
    """Flags merged into the answer of `client/dynamic_config`."""
    max_body_bytes: int = MAX_BODY_BYTES
    """Largest request body accepted (413 past it), and largest a zstd body may inflate to."""
    ended_sessions_kept: int = 10_000
    """How many ended sessions are remembered, so their late requests get 410 rather than 404."""


@dataclass
class Session:
    """A client session and what it owns."""

    session_id: str
    tags: list[str]
    user_metadata: dict[str, Any] | None
    sdk_version: str
    created_s: float = field(default_factory=time.time)
    last_seen_s: float = field(default_factory=time.monotonic)
    expired: bool = False
    finish_reason: str | None = None
    """Set by `sessions/{id}/finish` (first wins): the session is terminal."""
    model_ids: list[str] = field(default_factory=list)
    sampler_ids: list[str] = field(default_factory=list)
    heartbeats: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=1000)
    )
    """Arrival times (server monotonic clock) of the last heartbeats, for jitter checks."""


def need(
    body: dict[str, Any], name: str, kind: type | tuple[type, ...], *, optional: bool = False
) -> Any:
    """A field of a JSON body with its type checked; HTTPError 400 naming it otherwise."""
    value = body.get(name)
    if value is None:
        if optional:
            return None
        raise HTTPError(400, f"field '{name}' is required")
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise HTTPError(400, f"field '{name}' must be a number, got a boolean")
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise HTTPError(400, f"field '{name}' must be {names}, got {type(value).__name__}")
    return value


def body_of(request: Request) -> dict[str, Any]:
    """The request's JSON object body; HTTPError 400 when it is not an object."""
    data = request.json()
    if not isinstance(data, dict):
        raise HTTPError(400, "request body must be a JSON object")
    return data


class TinkerService:
    """Sessions, models, samplers and futures of one embedded server."""

    def __init__(
        self,
        store: FutureStore,
        faults: FaultPlan,
        storage: CheckpointStore,
        settings: ServerSettings,
    ) -> None:
        self.store = store
        self.faults = faults
        self.storage = storage
        self.settings = settings
        self.sessions: dict[str, Session] = {}
        self.ended: OrderedDict[str, str] = OrderedDict()
        """How each recently ended session ended: its finish reason, or `expired`."""
        self.ended_heartbeats: OrderedDict[str, list[float]] = OrderedDict()
        """Heartbeat times of the last few ended sessions, for `/_control/heartbeats`."""
        self.ended_sessions: OrderedDict[str, Session] = OrderedDict()
        """Slim records of the last ended sessions (no models, no heartbeats), for listings
        and searches, which show finished sessions as the service does."""
        self.models: dict[str, ModelEntry] = {}
        self.samplers: dict[str, SamplerEntry] = {}
        self.sampling = SamplingPool(store, faults)
        self.lock = threading.RLock()
        self.telemetry_events: list[dict[str, Any]] = []
        self.workers: list[OrderedWorker] = []
        self.request_counts: Mapping[str, int] = {}
        """Requests seen per path (the ASGI app's counter, set when the app is built)."""
        """Every model worker ever started, so stop() joins unloaded ones too."""

    # -- lookups ----------------------------------------------------------------------------------

    def session(self, session_id: Any) -> Session:
        """A live session; 404 when unknown, 410 when it ended."""
        s = self.sessions.get(session_id) if isinstance(session_id, str) else None
        if s is None:
            ended = self.ended.get(session_id) if isinstance(session_id, str) else None
            if ended is not None:
                raise HTTPError(410, self._ended_message(session_id, ended))
            raise HTTPError(404, f"session not found: {session_id!r}; create a session first")
        if s.finish_reason is not None:
            raise HTTPError(
                410, f"session {session_id} is finished ({s.finish_reason}); create a new session"
            )
        if s.expired:
            raise HTTPError(
                410,
                f"session {session_id} expired after "
                f"{self.settings.session_timeout_s:g} s without a heartbeat; "
                "create a new session",
            )
        s.last_seen_s = time.monotonic()
        return s

    def model(self, model_id: Any) -> ModelEntry:
        """A loaded model; 404 when unknown or unloaded."""
        entry = self.models.get(model_id) if isinstance(model_id, str) else None
        if entry is None:
            raise HTTPError(404, f"model not found: {model_id!r}; create it with create_model")
        self.session(entry.session_id)
        entry.last_request_s = time.time()
        return entry

    def sampler(self, sampling_session_id: Any) -> SamplerEntry:
        """A sampling session; 404 when unknown."""
        entry = (
            self.samplers.get(sampling_session_id) if isinstance(sampling_session_id, str) else None
        )
        if entry is None:
            raise HTTPError(404, f"sampling session not found: {sampling_session_id!r}")
        self.session(entry.session_id)
        return entry

    def future_answer(self, record_id: str, model_id: str | None = None, **extra: Any) -> Response:
        """The immediate answer of a queued request: its future."""
        out: dict[str, Any] = {"request_id": record_id}
        if model_id is not None:
            out["model_id"] = model_id
        out.update(extra)
        return json_response(out)

    def fail_if_scripted(self, path: str, request_id: str) -> bool:
        """Fail a new future now if a `fail_future` fault is armed for this path."""
        fault = self.faults.take(path, ("fail_future",))
        if fault is None:
            return False
        self.store.fail(request_id, fault.error, fault.category)
        return True

    @contextlib.contextmanager
    def refusing(self, entry: ModelEntry, seq_id: Any) -> Iterator[None]:
        """Count `seq_id` as used when the request is refused inside this block.

        Without this a refused request would leave a hole in the model's seq_id order, and the
        next good request would wait `gap_timeout_s` for a request that never comes.
        """
        try:
            yield
        except BaseException:
            if isinstance(seq_id, int) and not isinstance(seq_id, bool):
                entry.worker.consume(seq_id)
            raise

    # -- routes -----------------------------------------------------------------------------------

    def register(self, router: Router) -> None:
        """Add every endpoint of this module to a router."""
        for method, path, handler in (
            ("GET", "/api/v1/healthz", self.healthz),
            ("GET", "/api/v1/get_server_capabilities", self.capabilities),
            ("POST", "/api/v1/client/config", self.client_config),
            ("POST", "/api/v1/client/dynamic_config", self.dynamic_config),
            ("POST", "/api/v1/create_session", self.create_session),
            ("POST", "/api/v1/session_heartbeat", self.heartbeat),
            ("POST", "/api/v1/sessions/{session_id}/finish", self.finish_session),
            ("POST", "/api/v1/create_model", self.create_model),
            ("POST", "/api/v1/get_info", self.get_info),
            ("POST", "/api/v1/unload_model", self.unload_model),
            ("POST", "/api/v1/weights_info", self.weights_info),
            ("POST", "/api/v1/forward_backward", self.forward_backward),
            ("POST", "/api/v1/forward", self.forward),
            ("POST", "/api/v1/optim_step", self.optim_step),
            ("POST", "/api/v1/save_weights", self.save_weights),
            ("POST", "/api/v1/load_weights", self.load_weights),
            ("POST", "/api/v1/save_weights_for_sampler", self.save_weights_for_sampler),
            ("POST", "/api/v1/save_weights_external", self.save_weights_external),
            ("POST", "/api/v1/create_sampling_session", self.create_sampling_session),
            ("POST", "/api/v1/join_sampling_session", self.join_sampling_session),
            ("POST", "/api/v1/asample", self.asample),
            ("POST", "/api/v1/retrieve_future", self.retrieve_future),
            ("POST", "/api/v1/retrieve_futures", self.retrieve_futures),
            ("POST", "/api/v1/cancel_future", self.cancel_future),
        ):
            router.add(method, path, handler)

    # -- service ----------------------------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        """`GET healthz`."""
        return json_response({"status": "ok"})

    async def capabilities(self, request: Request) -> Response:
        """`GET get_server_capabilities`: the served base models."""
        return json_response(
            {
                "supported_models": [
                    {
                        "model_name": s.name,
                        "max_context_length": s.max_seq_len,
                        "trainable": True,
                        "sampleable": True,
                    }
                    for s in BASE_MODELS.values()
                ]
            }
        )

    async def client_config(self, request: Request) -> Response:
        """`POST client/config`: the server-driven client configuration."""
        body_of(request)
        flags: dict[str, Any] = {
            "pjwt_auth_enabled": False,
            "use_pyqwest_transport": False,
            "sample_use_retrieve_futures": False,
        }
        flags.update(self.settings.client_config)
        return json_response(flags)

    async def dynamic_config(self, request: Request) -> Response:
        """`POST client/dynamic_config`: flags a client re-reads periodically."""
        flags: dict[str, Any] = {
            "refresh_interval_sec": 300,
            "sample_cancel_enabled": True,
            "sample_cancel_max_batch_size": 64,
        }
        flags.update(self.settings.dynamic_config)
        return json_response(flags)

    async def create_session(self, request: Request) -> Response:
        """`POST create_session`."""
        body = body_of(request)
        tags = need(body, "tags", list, optional=True) or []
        if not all(isinstance(t, str) for t in tags):
            raise HTTPError(400, "field 'tags' must be a list of strings")
        metadata = need(body, "user_metadata", dict, optional=True)
        sdk_version = need(body, "sdk_version", str, optional=True) or "unknown"
        session_id = f"s-{uuid.uuid4().hex[:16]}"
        with self.lock:
            self.sessions[session_id] = Session(session_id, tags, metadata, sdk_version)
        log.info("session_created", session_id=session_id, sdk_version=sdk_version)
        return json_response({"type": "create_session", "session_id": session_id})

    async def heartbeat(self, request: Request) -> Response:
        """`POST session_heartbeat`."""
        self.session(body_of(request).get("session_id")).heartbeats.append(time.monotonic())
        return json_response({"type": "session_heartbeat"})

    async def finish_session(self, request: Request) -> Response:
        """`POST sessions/{id}/finish {reason: {type}, detail}`: end a session (first wins)."""
        body = body_of(request)
        reason = body.get("reason")
        kind = reason.get("type") if isinstance(reason, dict) else None
        if kind not in ("success", "errored", "interrupted"):
            raise HTTPError(
                400,
                f"field 'reason.type' must be 'success', 'errored' or 'interrupted', got {kind!r}",
            )
        session_id = request.params["session_id"]
        s = self.sessions.get(session_id)
        if s is None and session_id in self.ended:
            return json_response({})  # already ended: finishing again changes nothing
        if s is None:
            raise HTTPError(404, f"session not found: {session_id!r}")
        with self.lock:
            first = s.finish_reason is None
            if first:
                s.finish_reason = kind
        if first:
            self.expire_session(session_id, finished=True)
        return json_response({})

    def expire_session(self, session_id: str, *, finished: bool = False) -> None:
        """End a session now: its models, samplers and their futures are freed.

        The session is forgotten but for a line in `ended`, so a late request of its client
        gets 410 (create a new session) and the server's memory does not grow with churn.
        """
        with self.lock:
            s = self.sessions.pop(session_id, None)
            if s is None or s.expired:
                return
            s.expired = True
            self.ended[session_id] = s.finish_reason or "expired"
            why = self._ended_message(session_id, self.ended[session_id])
            while len(self.ended) > self.settings.ended_sessions_kept:
                self.ended.popitem(last=False)
            self.ended_heartbeats[session_id] = list(s.heartbeats)
            self.ended_sessions[session_id] = dataclasses.replace(
                s, heartbeats=collections.deque(maxlen=0)
            )
            while len(self.ended_sessions) > ENDED_SESSIONS_LISTED:
                self.ended_sessions.popitem(last=False)
            while len(self.ended_heartbeats) > ENDED_HEARTBEATS_KEPT:
                self.ended_heartbeats.popitem(last=False)
            workers = []
            for model_id in s.model_ids:
                entry = self.models.pop(model_id, None)
                if entry is not None:
                    workers.append(entry.worker)
            for sid in s.sampler_ids:
                self.samplers.pop(sid, None)
        for worker in workers:
            worker.stop(timeout_s=0.0)
        for owner in [*s.model_ids, *s.sampler_ids]:
            self.store.drop_owner(owner, why)
        log.info("session_finished" if finished else "session_expired", session_id=session_id)

    def _ended_message(self, session_id: str, how: str) -> str:
        if how != "expired":
            return f"session {session_id} is finished ({how}); create a new session"
        return (
            f"session {session_id} expired after {self.settings.session_timeout_s:g} s "
            "without a heartbeat; create a new session"
        )

    def expire_silent_sessions(self, now: float | None = None) -> int:
        """Expire every session silent for longer than the session timeout; returns how many.

        `now` is a `time.monotonic()` reading (given by tests to stand in for waiting).
        """
        now = time.monotonic() if now is None else now
        silent = [
            s.session_id
            for s in list(self.sessions.values())
            if now - s.last_seen_s > self.settings.session_timeout_s
        ]
        for session_id in silent:
            self.expire_session(session_id)
        with self.lock:
            self.workers = [w for w in self.workers if w.alive]
        return len(silent)

    # -- models -----------------------------------------------------------------------------------

    def _new_model(
        self,
        session: Session,
        model_seq_id: int,
        base_model: str,
        lora: dict[str, Any],
        user_metadata: dict[str, Any] | None,
        first_seq_id: int,
    ) -> ModelEntry:
        model_id = f"{session.session_id}:train:{model_seq_id}"
        if model_id in self.models:
            raise HTTPError(
                409,
                f"model_seq_id {model_seq_id} was already used in session "
                f"{session.session_id}; use the next model_seq_id",
            )
        try:
            spec = get_base_model(base_model)
            model = LoraModel(
                spec,
                rank=lora.get("rank", 32),
                seed=lora.get("seed"),
                train_mlp=lora.get("train_mlp", True),
                train_attn=lora.get("train_attn", True),
                train_unembed=lora.get("train_unembed", True),
            )
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from exc
        worker = OrderedWorker(
            model_id,
            "training",
            self.store,
            self.faults,
            first_seq_id=first_seq_id,
            gap_timeout_s=self.settings.gap_timeout_s,
        )
        entry = ModelEntry(model_id, session.session_id, spec.name, model, worker, user_metadata)
        with self.lock:
            self.workers.append(worker)
            self.models[model_id] = entry
            session.model_ids.append(model_id)
        self.storage.put_run(
            model_id,
            {
                "base_model": spec.name,
                "model_owner": self.storage.owner,
                "is_lora": True,
                "lora_rank": model.rank,
                "created_s": time.time(),
                "session_id": session.session_id,
                "user_metadata": user_metadata,
                "corrupted": False,
            },
        )
        return entry

    async def create_model(self, request: Request) -> Response:
        """`POST create_model`: answers a future of `{model_id}`."""
        body = body_of(request)
        session = self.session(body.get("session_id"))
        model_seq_id = need(body, "model_seq_id", int)
        base_model = need(body, "base_model", str)
        lora = need(body, "lora_config", dict, optional=True) or {}
        if "rank" in lora and (isinstance(lora["rank"], bool) or not isinstance(lora["rank"], int)):
            raise HTTPError(400, "field 'lora_config.rank' must be an integer")
        entry = self._new_model(
            session,
            model_seq_id,
            base_model,
            lora,
            need(body, "user_metadata", dict, optional=True),
            1,
        )
        record = self.store.create("CreateModel", entry.model_id)
        if not self.fail_if_scripted(request.path, record.request_id):
            self.store.complete(
                record.request_id, {"type": "create_model", "model_id": entry.model_id}
            )
        return self.future_answer(record.request_id, entry.model_id)

    async def get_info(self, request: Request) -> Response:
        """`POST get_info`."""
        entry = self.model(body_of(request).get("model_id"))
        return json_response(
            {
                "type": "get_info",
                "model_id": entry.model_id,
                "model_data": {
                    "arch": "byte-mlp",
                    "model_name": entry.base_model,
                    "tokenizer_id": entry.base_model,
                },
                "is_lora": True,
                "lora_rank": entry.model.rank,
                "model_name": entry.base_model,
            }
        )

    async def unload_model(self, request: Request) -> Response:
        """`POST unload_model`: a future of `{model_id}`; queued behind the model's work."""
        body = body_of(request)
        entry = self.model(body.get("model_id"))
        record = self.store.create("UnloadModel", entry.model_id)

        def unload() -> tuple[Any, bytes | None]:
            with self.lock:
                self.models.pop(entry.model_id, None)
            entry.worker.stop()
            return {"type": "unload_model", "model_id": entry.model_id}, None

        entry.worker.submit(body.get("seq_id"), record.request_id, unload)
        return self.future_answer(record.request_id, entry.model_id)

    async def weights_info(self, request: Request) -> Response:
        """`POST weights_info {tinker_path}`: the LoRA config a checkpoint was made with."""
        path = need(body_of(request), "tinker_path", str)
        try:
            meta = self.storage.meta(path)
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from exc
        except StorageError as exc:
            raise HTTPError(exc.status, str(exc)) from exc
        lora = meta.get("lora", {})
        return json_response(
            {
                "base_model": meta.get("base_model"),
                "is_lora": True,
                "lora_rank": lora.get("rank"),
                "train_unembed": lora.get("train_unembed"),
                "train_mlp": lora.get("train_mlp"),
                "train_attn": lora.get("train_attn"),
            }
        )

    # -- training ---------------------------------------------------------------------------------

    def _queue(
        self, request: Request, entry: ModelEntry, seq_id: Any, request_type: str, job: Any
    ) -> Response:
        if seq_id is not None and (isinstance(seq_id, bool) or not isinstance(seq_id, int)):
            raise HTTPError(400, "field 'seq_id' must be an integer")
        if seq_id is not None:
            known = entry.worker.known(seq_id)
            if known is not None:
                # The same step sent again (a retry whose answer was lost): never apply twice.
                return self.future_answer(known, entry.model_id)
        record = self.store.create(request_type, entry.model_id)
        if self.fail_if_scripted(request.path, record.request_id):
            if seq_id is not None:
                entry.worker.consume(seq_id)
            return self.future_answer(record.request_id, entry.model_id)
        try:
            entry.worker.submit(seq_id, record.request_id, job)
        except UserError as exc:
            raise HTTPError(400, str(exc)) from exc
        return self.future_answer(record.request_id, entry.model_id)

    async def forward_backward(self, request: Request) -> Response:
        """`POST forward_backward` (protobuf or JSON); also forward when `forward_only`."""
        fb = wire.read_forward_backward(request, max_size_bytes=self.settings.max_body_bytes)
        return self._queue_forward(request, fb)

    async def forward(self, request: Request) -> Response:
        """`POST forward` (JSON, older SDKs)."""
        fb = wire.read_forward_backward(
            request, max_size_bytes=self.settings.max_body_bytes, forward_only=True
        )
        return self._queue_forward(request, fb)

    def _queue_forward(self, request: Request, fb: wire.ForwardBackwardCall) -> Response:
        entry = self.model(fb.model_id)
        with self.refusing(entry, fb.seq_id):
            datums = wire.model_datums(fb.data, entry.model.spec.vocab_size)

        def run() -> tuple[Any, bytes | None]:
            result = entry.model.forward_backward(
                datums, fb.loss_fn, fb.loss_fn_config, backward=not fb.forward_only
            )
            return wire.forward_output(result)

        kind = "Forward" if fb.forward_only else "ForwardBackward"
        return self._queue(request, entry, fb.seq_id, kind, run)

    async def optim_step(self, request: Request) -> Response:
        """`POST optim_step {adam_params, model_id, seq_id}`."""
        body = body_of(request)
        entry = self.model(body.get("model_id"))
        with self.refusing(entry, body.get("seq_id")):
            raw = body.get("adam_params", body.get("optim_params"))
            if not isinstance(raw, dict):
                raise HTTPError(
                    400, "field 'adam_params' is required (an object of Adam settings)"
                )
            adam = types.convert(raw, types.AdamParams)
            check_adam(
                adam.learning_rate,
                adam.beta1,
                adam.beta2,
                adam.eps,
                adam.weight_decay,
                adam.grad_clip_norm,
            )

        def run() -> tuple[Any, bytes | None]:
            metrics = entry.model.optim_step(
                learning_rate=adam.learning_rate,
                beta1=adam.beta1,
                beta2=adam.beta2,
                eps=adam.eps,
                weight_decay=adam.weight_decay,
                grad_clip_norm=adam.grad_clip_norm,
            )
            return {"metrics": metrics}, None

        return self._queue(request, entry, body.get("seq_id"), "OptimStep", run)

    def _checkpoint_meta(self, entry: ModelEntry, user_metadata: Any) -> dict[str, Any]:
        return {
            "base_model": entry.base_model,
            "lora": entry.model.lora_config(),
            "user_metadata": user_metadata,
        }

    async def save_weights(self, request: Request) -> Response:
        """`POST save_weights`: weights and optimizer state, as `tinker://<model>/weights/<name>`."""
        body = body_of(request)
        entry = self.model(body.get("model_id"))
        with self.refusing(entry, body.get("seq_id")):
            name = check_name(
                need(body, "path", str, optional=True) or f"ckpt-{uuid.uuid4().hex[:8]}"
            )
            ttl = need(body, "ttl_seconds", int, optional=True)
            metadata = need(body, "user_metadata", dict, optional=True)

        def run() -> tuple[Any, bytes | None]:
            state = entry.model.state(include_optimizer=True)
            p = self.storage.save(
                entry.model_id,
                "training",
                name,
                state,
                self._checkpoint_meta(entry, metadata),
                ttl_seconds=ttl,
            )
            return {"type": "save_weights", "path": p.tinker_path}, None

        return self._queue(request, entry, body.get("seq_id"), "SaveWeights", run)

    async def save_weights_external(self, request: Request) -> Response:
        """`POST save_weights_external`: weights for download, `tinker://<m>/external_weights/<n>`."""
        body = body_of(request)
        entry = self.model(body.get("model_id"))
        with self.refusing(entry, body.get("seq_id")):
            name = check_name(need(body, "path", str))
            ttl = need(body, "ttl_seconds", int, optional=True)
            if body.get("age_encryption_recipients"):
                raise HTTPError(
                    400,
                    "field 'age_encryption_recipients' is not supported by the "
                    "embedded server; leave it out",
                )

        def run() -> tuple[Any, bytes | None]:
            state = entry.model.state(include_optimizer=False)
            p = self.storage.save(
                entry.model_id,
                "external",
                name,
                state,
                self._checkpoint_meta(entry, None),
                ttl_seconds=ttl,
            )
            return {"type": "save_weights_external", "path": p.tinker_path}, None

        return self._queue(request, entry, body.get("seq_id"), "SaveWeightsExternal", run)

    async def save_weights_for_sampler(self, request: Request) -> Response:
        """`POST save_weights_for_sampler`: a sampler checkpoint, or an ephemeral sampler."""
        body = body_of(request)
        entry = self.model(body.get("model_id"))
        with self.refusing(entry, body.get("seq_id")):
            name = need(body, "path", str, optional=True)
            if name is not None:
                check_name(name)
            ttl = need(body, "ttl_seconds", int, optional=True)
            seq = need(body, "sampling_session_seq_id", int, optional=True)
            metadata = need(body, "user_metadata", dict, optional=True)
            if name is None and seq is None:
                raise HTTPError(
                    400,
                    "give 'path' (a checkpoint name) or 'sampling_session_seq_id' "
                    "(an ephemeral sampler)",
                )
        session = self.session(entry.session_id)

        def run() -> tuple[Any, bytes | None]:
            state = entry.model.state(include_optimizer=False)
            if name is not None:
                p = self.storage.save(
                    entry.model_id,
                    "sampler",
                    name,
                    state,
                    self._checkpoint_meta(entry, metadata),
                    ttl_seconds=ttl,
                )
                return {"type": "save_weights_for_sampler", "path": p.tinker_path}, None
            snapshot = LoraModel.from_state(state, with_optimizer=False)
            sid = self._add_sampler(session, seq, entry.base_model, None, snapshot)
            return {"type": "save_weights_for_sampler", "sampling_session_id": sid}, None

        return self._queue(request, entry, body.get("seq_id"), "SaveWeightsForSampler", run)

    async def load_weights(self, request: Request) -> Response:
        """`POST load_weights`: into a model (model_id form) or a new one (session form)."""
        body = body_of(request)
        into = self.model(body["model_id"]) if body.get("model_id") is not None else None
        with contextlib.nullcontext() if into is None else self.refusing(into, body.get("seq_id")):
            path = need(body, "path", str)
            optimizer = bool(body.get("optimizer", False))
            try:
                parse_tinker_path(path)
                meta = self.storage.meta(path)
            except ValueError as exc:
                raise HTTPError(400, str(exc)) from exc
            except StorageError as exc:
                raise HTTPError(exc.status, str(exc)) from exc
            if optimizer and meta.get("checkpoint_type") != "training":
                raise HTTPError(
                    400,
                    f"{path} is a sampler checkpoint without optimizer state; "
                    "load a 'weights' checkpoint (save_state) instead",
                )
        if into is not None:
            entry = into
            seq_id = body.get("seq_id")
        else:
            session = self.session(body.get("session_id"))
            model_seq_id = need(body, "model_seq_id", int)
            lora = dict(meta.get("lora", {}))
            base = need(body, "base_model", str, optional=True) or meta.get("base_model", "")
            entry = self._new_model(
                session,
                model_seq_id,
                base,
                lora,
                need(body, "user_metadata", dict, optional=True),
                1,
            )
            seq_id = None

        def run() -> tuple[Any, bytes | None]:
            arrays, _ = self.storage.load(path)
            entry.model.load_state(arrays, with_optimizer=optimizer)
            return {"type": "load_weights", "path": path, "model_id": entry.model_id}, None

        return self._queue(request, entry, seq_id, "LoadWeights", run)

    # -- sampling ---------------------------------------------------------------------------------

    def _add_sampler(
        self,
        session: Session,
        seq: int | None,
        base_model: str,
        model_path: str | None,
        model: LoraModel,
    ) -> str:
        suffix = seq if seq is not None else f"x{uuid.uuid4().hex[:8]}"
        sid = f"{session.session_id}:sample:{suffix}"
        with self.lock:
            existing = self.samplers.get(sid)
            if existing is not None and seq is not None:
                return sid
            self.samplers[sid] = SamplerEntry(
                sid, session.session_id, base_model, model_path, model
            )
            session.sampler_ids.append(sid)
        self.store.open_log(sid)
        return sid

    def _sampler_model(
        self, base_model: str | None, model_path: str | None
    ) -> tuple[str, LoraModel]:
        if model_path is not None:
            try:
                arrays, meta = self.storage.load(model_path)
            except ValueError as exc:
                raise HTTPError(400, str(exc)) from exc
            except StorageError as exc:
                raise HTTPError(exc.status, str(exc)) from exc
            return str(meta.get("base_model")), LoraModel.from_state(arrays, with_optimizer=False)
        if base_model is None:
            raise HTTPError(400, "give 'base_model' or 'model_path' to sample from")
        try:
            return get_base_model(base_model).name, LoraModel.base(base_model)
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from exc

    async def create_sampling_session(self, request: Request) -> Response:
        """`POST create_sampling_session`."""
        body = body_of(request)
        session = self.session(body.get("session_id"))
        seq = need(body, "sampling_session_seq_id", int)
        base, model = self._sampler_model(
            need(body, "base_model", str, optional=True),
            need(body, "model_path", str, optional=True),
        )
        sid = self._add_sampler(session, seq, base, body.get("model_path"), model)
        return json_response({"type": "create_sampling_session", "sampling_session_id": sid})

    async def join_sampling_session(self, request: Request) -> Response:
        """`POST join_sampling_session`: hands a clone its client counter."""
        entry = self.sampler(body_of(request).get("sampling_session_id"))
        with self.lock:
            counter = entry.clients
            entry.clients += 1
        return json_response({"type": "join_sampling_session", "client_counter": counter})

    async def asample(self, request: Request) -> Response:
        """`POST asample`: a future of a SampleResponse; the promise names each sequence."""
        body = body_of(request)
        sample = types.convert(body, types.SampleRequest)
        if sample.sampling_session_id is not None:
            entry = self.sampler(sample.sampling_session_id)
            owner, model = entry.sampling_session_id, entry.model
            if sample.seq_id is not None:
                known = entry.seen_seq_ids.get(sample.seq_id)
                if known is not None:
                    return self.future_answer(
                        known,
                        None,
                        sample_sequence_ids=[f"{known}:{i}" for i in range(sample.num_samples)],
                    )
        else:
            _, model = self._sampler_model(sample.base_model, sample.model_path)
            owner = "sampling"
        prompt = wire.prompt_tokens(sample.prompt)
        wire.check_prompt(prompt, model.spec.vocab_size)
        wire.check_sample_lengths(prompt, sample, model.spec.max_seq_len)
        record = self.store.create("Sample", owner)
        if sample.sampling_session_id is not None and sample.seq_id is not None:
            entry.seen_seq_ids[sample.seq_id] = record.request_id
        if not self.fail_if_scripted(request.path, record.request_id):
            self.sampling.submit(
                owner, record.request_id, lambda: wire.run_sample(model, prompt, sample)
            )
        ids = [f"{record.request_id}:{i}" for i in range(sample.num_samples)]
        return self.future_answer(record.request_id, None, sample_sequence_ids=ids)

    # -- futures ----------------------------------------------------------------------------------

    async def retrieve_future(self, request: Request) -> Response:
        """`POST retrieve_future`: long-poll one future."""
        body = body_of(request)
        request_id = need(body, "request_id", str)
        record = await self.store.wait(request_id, self.settings.long_poll_timeout_s)
        if record is None:
            raise HTTPError(
                404,
                f"no future with request_id {request_id!r}: it never existed "
                "or its result expired; resubmit the request",
            )
        if record.state == "failed":
            return json_response({"error": record.error, "category": record.category})
        if record.state == "completed":
            if record.proto_result is not None and request.accepts_protobuf():
                return Response(200, record.proto_result, "application/x-protobuf")
            result = record.json_result
            return json_response(result() if callable(result) else result)
        kind = "sampling" if record.request_type == "Sample" else "training"
        pause = self.faults.pause_for(kind, record.owner)
        answer: dict[str, Any] = {
            "type": "try_again",
            "request_id": request_id,
            "queue_state": pause.state if pause else "active",
        }
        if pause is not None and pause.reason:
            answer["queue_state_reason"] = pause.reason
        if pause is not None:
            return json_response(answer)
        return json_response(answer, 408)

    async def retrieve_futures(self, request: Request) -> Response:
        """`POST retrieve_futures`: one long-poll for every future of a sampling session."""
        body = body_of(request)
        target = need(body, "target", dict)
        owner = need(target, "sampling_session_id", str)
        self.sampler(owner)
        self.store.ack(
            owner, [r for r in body.get("retrieved_request_ids") or [] if isinstance(r, str)]
        )
        timeout = body.get("timeout")
        timeout_s = self.settings.long_poll_timeout_s if timeout is None else float(timeout)
        prev = body.get("prev_cursor")
        got = await self.store.wait_log(
            owner,
            prev if isinstance(prev, int) else None,
            min(timeout_s, self.settings.long_poll_timeout_s),
        )
        if got is None:
            raise HTTPError(404, f"sampling session not found: {owner!r}")
        completions, cursor = got
        return json_response(
            {
                "cursor": cursor,
                "completions": [
                    {
                        "state": c.state,
                        "request_id": c.request_id,
                        **(
                            {"response_payload_uncompressed_size": c.payload_size}
                            if c.state == "finished" and c.payload_size is not None
                            else {}
                        ),
                    }
                    for c in completions
                ],
            }
        )

    async def cancel_future(self, request: Request) -> Response:
        """`POST cancel_future`: fail a pending sampling future as cancelled."""
        body = body_of(request)
        ids = body.get("request_ids") or [body.get("request_id")]
        for rid in ids:
            if isinstance(rid, str):
                self.store.fail(rid, "cancelled by the client", "user")
        return json_response({"status": "accepted"})

    def stop(self) -> None:
        """Stop every worker thread."""
        for worker in list(self.workers):
            worker.stop()
        self.sampling.stop()
