"""`ServerState`: what the embedded server holds, and how sessions, models and samplers end.

Sessions own models and samplers; ids follow the service's forms: a model is
`<session_id>:train:<model_seq_id>`, a sampler `<session_id>:sample:<seq>`. Lookups answer
404 for an unknown id and 410 for a session that ended (finished, or expired after
`session_timeout_s` without a heartbeat). An ended session is forgotten but for a line in
`ended`, so the server's memory does not grow with client churn.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from supervisors.library_logging import get_logger
from tinkex_actors.local.engine import ModelEntry, OrderedWorker, SamplerEntry, SamplingPool
from tinkex_actors.local.faults import FaultPlan
from tinkex_actors.local.futures import FutureStore
from tinkex_actors.local.http_messages import HTTPError
from tinkex_actors.local.model import LoraModel, get_base_model
from tinkex_actors.local.settings import ServerSettings
from tinkex_actors.local.storage import CheckpointStore

__all__ = ["ENDED_HEARTBEATS_KEPT", "ENDED_SESSIONS_LISTED", "ServerState", "Session"]

log = get_logger("tinkex_actors.local")

ENDED_SESSIONS_LISTED = 1_000
"""How many ended sessions searches and trace exports still find."""
ENDED_HEARTBEATS_KEPT = 64


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


class ServerState:
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
        """Every model worker ever started, so stop() joins unloaded ones too."""
        self.request_counts: Mapping[str, int] = {}
        """Requests seen per path (the ASGI app's counter, set when the app is built)."""

    # -- lookups ----------------------------------------------------------------------------------

    def session(self, session_id: Any) -> Session:
        """A live session; 404 when unknown, 410 when it ended."""
        s = self.sessions.get(session_id) if isinstance(session_id, str) else None
        if s is None:
            ended = self.ended.get(session_id) if isinstance(session_id, str) else None
            if ended is not None:
                raise HTTPError(410, self.ended_message(session_id, ended))
            raise HTTPError(404, f"session not found: {session_id!r}; create a session first")
        if s.finish_reason is not None:
            raise HTTPError(410, self.ended_message(session_id, s.finish_reason))
        if s.expired:
            raise HTTPError(410, self.ended_message(session_id, "expired"))
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

    # -- what sessions own ------------------------------------------------------------------------

    def new_model(
        self,
        session: Session,
        model_seq_id: int,
        base_model: str,
        lora: dict[str, Any],
        user_metadata: dict[str, Any] | None,
        first_seq_id: int,
    ) -> ModelEntry:
        """A new training model of a session, with its worker and its training-run record.

        409 when the session already used `model_seq_id`, 400 for a bad base model or LoRA.
        """
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

    def add_sampler(
        self,
        session: Session,
        seq: int | None,
        base_model: str,
        model_path: str | None,
        model: LoraModel,
    ) -> str:
        """A sampling session of `session` over `model`; its id (the same for a repeated seq)."""
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

    # -- ending -----------------------------------------------------------------------------------

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
            why = self.ended_message(session_id, self.ended[session_id])
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

    def ended_message(self, session_id: str, how: str) -> str:
        """Why a request of an ended session is refused (410): how it ended, and the fix."""
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

    def stop(self) -> None:
        """Stop every worker thread."""
        for worker in list(self.workers):
            worker.stop()
        self.sampling.stop()
