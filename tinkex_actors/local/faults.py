"""Misbehaviour on demand: scripted faults of the embedded server, for tests.

Every fault is deterministic and counted: "answer the next 2 requests to /api/v1/retrieve_future
with 503", "drop the next connection to /api/v1/asample", "pause the training queue with
paused_rate_limit". A test scopes its faults by clearing them (`FaultPlan.clear`) when it ends;
the server's `faults` attribute and its `POST /_control/faults` endpoint drive the same plan.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Literal

FaultKind = Literal["status", "drop", "delay", "fail_future"]
QueueState = Literal["active", "paused_rate_limit", "paused_capacity"]

_KINDS = ("status", "drop", "delay", "fail_future")
_QUEUE_STATES = ("active", "paused_rate_limit", "paused_capacity")
_TARGETS = ("training", "sampling")


@dataclass
class Fault:
    """One scripted fault, applied to the next `times` requests whose path matches."""

    path: str
    """An exact request path such as `/api/v1/retrieve_future`, or `*` for every path."""
    kind: FaultKind
    times: int = 1
    status: int = 500
    body: Any = None
    """The JSON body of a `status` fault; None sends a body in the service's error shape."""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    error: str = "injected failure"
    category: Literal["user", "server", "unknown"] = "server"
    every: int = 1
    """Apply to every `every`-th matching request only (5: one in five), `times` times."""
    _seen: int = 0

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"fault kind must be one of {_KINDS}, got {self.kind!r}")
        if self.times < 1:
            raise ValueError(f"fault times must be >= 1, got {self.times}")
        if self.kind == "status" and not 100 <= self.status <= 599:
            raise ValueError(f"fault status must be an HTTP status (100-599), got {self.status}")
        if self.delay_s < 0:
            raise ValueError(f"fault delay_s must be >= 0, got {self.delay_s}")
        if self.every < 1:
            raise ValueError(f"fault every must be >= 1, got {self.every}")


@dataclass(frozen=True)
class Pause:
    """A paused queue: its state and the reason the server gives."""

    state: QueueState
    reason: str | None


class FaultPlan:
    """The faults and queue pauses in force on one server; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._pauses: dict[str, Pause] = {}
        self.resumed = threading.Condition(self._lock)

    def add(self, fault: Fault) -> None:
        """Add a fault; faults for the same path apply in the order they were added."""
        with self._lock:
            self._faults.append(fault)

    def inject_status(
        self,
        path: str,
        status: int,
        *,
        times: int = 1,
        every: int = 1,
        body: Any = None,
        retry_after_s: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next `times` requests to `path` with an HTTP status (and Retry-After)."""
        hdrs = dict(headers or {})
        if retry_after_s is not None:
            hdrs["retry-after"] = f"{retry_after_s:g}"
        self.add(
            Fault(
                path=path,
                kind="status",
                status=status,
                times=times,
                body=body,
                headers=hdrs,
                every=every,
            )
        )

    def drop(self, path: str, *, times: int = 1) -> None:
        """Drop the connection of the next `times` requests to `path` mid-response."""
        self.add(Fault(path=path, kind="drop", times=times))

    def delay(self, path: str, delay_s: float, *, times: int = 1) -> None:
        """Hold the next `times` requests to `path` for delay_s before answering them."""
        self.add(Fault(path=path, kind="delay", delay_s=delay_s, times=times))

    def fail_future(
        self,
        path: str,
        *,
        error: str = "injected failure",
        category: Literal["user", "server", "unknown"] = "server",
        times: int = 1,
    ) -> None:
        """Fail the futures of the next `times` requests to `path` with an error of a category."""
        self.add(Fault(path=path, kind="fail_future", error=error, category=category, times=times))

    def take(self, path: str, kinds: tuple[FaultKind, ...]) -> Fault | None:
        """Consume one use of the first fault of one of `kinds` matching `path`, if any."""
        with self._lock:
            for fault in self._faults:
                if fault.kind in kinds and fault.path in (path, "*"):
                    fault._seen += 1
                    if fault._seen % fault.every:
                        continue  # not this one: a later request of the path gets it
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                    return fault
            return None

    def pause(self, target: str, state: QueueState, reason: str | None = None) -> None:
        """Pause a queue: `training`, `sampling`, or one model_id / sampling_session_id."""
        if state not in _QUEUE_STATES:
            raise ValueError(f"queue state must be one of {_QUEUE_STATES}, got {state!r}")
        with self._lock:
            if state == "active":
                self._pauses.pop(target, None)
                self.resumed.notify_all()
            else:
                self._pauses[target] = Pause(state, reason)

    def resume(self, target: str) -> None:
        """Resume a paused queue."""
        self.pause(target, "active")

    def pause_for(self, kind: str, owner: str) -> Pause | None:
        """The pause in force for an owner of a kind (`training` or `sampling`), if any."""
        with self._lock:
            return self._pauses.get(owner) or self._pauses.get(kind)

    def wait_resumed(self, kind: str, owner: str, timeout_s: float) -> bool:
        """Block a worker thread until its queue is not paused; False on timeout."""
        with self._lock:
            return self.resumed.wait_for(
                lambda: owner not in self._pauses and kind not in self._pauses, timeout_s
            )

    def clear(self) -> None:
        """Remove every fault and pause (the end of a test's scope)."""
        with self._lock:
            self._faults.clear()
            self._pauses.clear()
            self.resumed.notify_all()

    def apply_control(self, command: dict[str, Any]) -> None:
        """Apply one command of the `POST /_control/faults` endpoint.

        Commands: `{"action": "add", "fault": {...Fault fields...}}`,
        `{"action": "pause", "target": ..., "state": ..., "reason": ...}`,
        `{"action": "resume", "target": ...}`, `{"action": "clear"}`.
        """
        action = command.get("action")
        if action == "add":
            spec = command.get("fault")
            if not isinstance(spec, dict):
                raise ValueError("field 'fault' must be an object of Fault fields")
            self.add(Fault(**spec))
        elif action == "pause":
            self.pause(
                str(command.get("target")),
                command.get("state", "paused_capacity"),
                command.get("reason"),
            )
        elif action == "resume":
            self.resume(str(command.get("target")))
        elif action == "clear":
            self.clear()
        else:
            raise ValueError(
                f"field 'action' must be one of add, pause, resume, clear; got {action!r}"
            )
