"""Queue states: why the server is not running queued work, and how a client reports it.

The server answers a poll of queued work with a queue state (`active`, `paused_rate_limit`,
`paused_capacity`, anything else reads as `unknown`) and sometimes a reason. A Poller sends
each change of a future's queue state as a `QueueStateChange` message to the actor that owns
the future (a TrainingClient or SamplingClient actor). The owner keeps a `QueueStateDebouncer`
in its own state and hands it every change:

    def on_receive(self, message):
        if isinstance(message, QueueStateChange):
            self.queue_states.handle(message)

The debouncer then (1) emits the telemetry event `queue.state_change` every time, (2) logs one
structlog WARNING in the official SDK's wording ("Training for <model_id> is paused. Reason:
..." / "Sampling is paused for sampler <id>. Reason: ...") at most once per `interval_s`
(60 s) per client, never for `active`, the server's reason winning over the default one, and
(3) forwards the change to every user `QueueStateObserver`; an observer that raises is logged
and never breaks polling.

Differences from official 0.38, on purpose: training pauses are reported at once (official waits
until a pause has lasted 15 min, `PAUSE_GRACE_PERIOD`; pass `grace_period_s=900` to get that).

A seam for fleets: `install_warning_sink(sink)` hands the warning step (2) of every debouncer in
the process to `sink(kind, identifier, change)` (a fleet worker forwards it, without waiting, to
the coordinator that debounces for the whole fleet); telemetry and observers stay local.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Final, Literal, Protocol, runtime_checkable

from supervisors.library_logging import get_logger
from tinkex_actors import telemetry
from tinkex_actors.types import QueueState

__all__ = [
    "DEFAULT_LOG_INTERVAL_S",
    "OwnerKind",
    "QueueState",
    "QueueStateChange",
    "QueueStateDebouncer",
    "QueueStateObserver",
    "WarningSink",
    "default_reason",
    "install_warning_sink",
    "parse_queue_state",
    "pause_message",
]

DEFAULT_LOG_INTERVAL_S: Final = 60.0
"""A client logs at most one pause warning per this many seconds (official value)."""

OwnerKind = Literal["training", "sampling", "model_creation"]
_KINDS: Final = ("training", "sampling", "model_creation")

_log = get_logger("tinkex_actors.futures.queue_state")

WarningSink = Callable[["OwnerKind", str, "QueueStateChange"], None]
"""Takes over the pause warnings of this process: (owner kind, identifier, change); must not
block (it runs in a client actor's thread)."""
_sink: WarningSink | None = None


def install_warning_sink(sink: WarningSink | None) -> WarningSink | None:
    """Send this process's pause warnings to `sink` (None: log them here, the default);
    returns the sink it replaced."""
    global _sink
    previous, _sink = _sink, sink
    return previous


def parse_queue_state(value: object) -> QueueState:
    """The state for a wire value, ignoring case; anything unrecognised is UNKNOWN."""
    if isinstance(value, QueueState):
        return value
    return QueueState.parse(str(value).strip().lower()) if value is not None else QueueState.UNKNOWN


@runtime_checkable
class QueueStateObserver(Protocol):
    """Anything told about queue-state changes (the official SDK's observer interface)."""

    def on_queue_state_change(
        self, queue_state: QueueState, queue_state_reason: str | None
    ) -> None:
        """Called with each change; runs in the owning client actor's thread, keep it short."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class QueueStateChange:
    """Message from a Poller to the owner of a future: that future's queue state changed."""

    request_id: str
    request_type: str
    state: QueueState
    reason: str | None = None


def default_reason(kind: OwnerKind, state: QueueState) -> str:
    """The reason shown when the server gives none (the official defaults per state)."""
    if state is QueueState.PAUSED_RATE_LIMIT:
        if kind == "sampling":
            return "concurrent sampler weights limit hit"
        return "concurrent training clients rate limit hit"
    if state is QueueState.PAUSED_CAPACITY:
        return "Tinker backend is running short on capacity, please wait"
    return "unknown"


def pause_message(kind: OwnerKind, identifier: str, state: QueueState, reason: str | None) -> str:
    """The warning text, worded as the official SDK words it; the server's reason wins."""
    shown = reason or default_reason(kind, state)
    if kind == "sampling":
        return f"Sampling is paused for sampler {identifier}. Reason: {shown}"
    prefix = "Training" if kind == "training" else "Model creation"
    return f"{prefix} for {identifier} is paused. Reason: {shown}."


class QueueStateDebouncer:
    """One client's queue-state reporting; lives in the client actor's state (not thread-safe).

    `identifier` is the model_id (training), the sampling_session_id (sampling) or the base
    model (model creation). `clock` is a monotonic reading in seconds (inject a fake in tests).
    """

    def __init__(
        self,
        kind: OwnerKind,
        identifier: str,
        *,
        interval_s: float = DEFAULT_LOG_INTERVAL_S,
        grace_period_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        observers: tuple[QueueStateObserver, ...] = (),
    ) -> None:
        if kind not in _KINDS:
            raise ValueError(
                f"QueueStateDebouncer kind={kind!r} is not valid; use one of {', '.join(_KINDS)}"
            )
        for name, value in (("interval_s", interval_s), ("grace_period_s", grace_period_s)):
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(
                    f"QueueStateDebouncer {name}={value!r} is not valid; pass seconds >= 0"
                )
        self.kind: OwnerKind = kind
        self.identifier = identifier
        self.interval_s = float(interval_s)
        self.grace_period_s = float(grace_period_s)
        self._clock = clock
        self._observers: list[QueueStateObserver] = []
        for observer in observers:
            self.add_observer(observer)
        self._last_logged: float | None = None
        self._state: QueueState = QueueState.ACTIVE
        self._state_since = clock()

    @property
    def state(self) -> QueueState:
        """The last state handed to `handle` (ACTIVE before any)."""
        return self._state

    def add_observer(self, observer: QueueStateObserver) -> None:
        """Forward every later change to `observer.on_queue_state_change(state, reason)`."""
        if not callable(getattr(observer, "on_queue_state_change", None)):
            raise TypeError(
                f"observer {observer!r} has no on_queue_state_change(state, reason) method; "
                "implement the QueueStateObserver protocol"
            )
        self._observers.append(observer)

    def remove_observer(self, observer: QueueStateObserver) -> bool:
        """Stop forwarding to `observer`; False if it was not added."""
        try:
            self._observers.remove(observer)
        except ValueError:
            return False
        return True

    def handle(self, change: QueueStateChange) -> bool:
        """Report one change: telemetry always, a warning when due, then the observers.

        Returns True when a warning was logged.
        """
        now = self._clock()
        if change.state is not self._state:
            self._state = change.state
            self._state_since = now
        telemetry.emit(
            telemetry.EVENT_QUEUE_STATE_CHANGE,
            None,
            {
                "request_id": change.request_id,
                "request_type": change.request_type,
                "state": change.state.value,
                "reason": change.reason,
                "owner_kind": self.kind,
                "owner": self.identifier,
            },
        )
        sink = _sink
        if sink is None:
            logged = self._maybe_warn(change, now)
        else:
            logged = False
            try:
                sink(self.kind, self.identifier, change)
            except Exception as exc:
                _log.error("queue_state_sink_failed", error=repr(exc), exc_info=exc)
        for observer in list(self._observers):
            try:
                observer.on_queue_state_change(change.state, change.reason)
            except Exception as exc:
                _log.error(
                    "queue_state_observer_failed",
                    observer=repr(observer),
                    state=change.state.value,
                    error=repr(exc),
                    exc_info=exc,
                )
        return logged

    def _maybe_warn(self, change: QueueStateChange, now: float) -> bool:
        if change.state is QueueState.ACTIVE:
            return False
        if now - self._state_since < self.grace_period_s:
            return False
        if self._last_logged is not None and now - self._last_logged < self.interval_s:
            return False
        self._last_logged = now
        reason = change.reason or default_reason(self.kind, change.state)
        _log.warning(
            "queue_paused",
            message=pause_message(self.kind, self.identifier, change.state, change.reason),
            owner_kind=self.kind,
            owner=self.identifier,
            state=change.state.value,
            reason=reason,
            request_id=change.request_id,
        )
        return True
