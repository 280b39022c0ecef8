"""What a poller pool tracks: the spec of each future and its poll state, in per-slot ledgers.

`PollSpec` says what to poll and how to read its result. Each tracked future is one
`PollEntry`, mutated only by the Poller driving it. A `PollLedger` holds the entries of one
pool slot outside the actor, so that a restarted Poller adopts every entry of its slot and
polls it again, and the pool fails whatever is left when it stops (see `poller_pool`).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pykka import ActorRef

from tinkex_actors.futures.future import Future
from tinkex_actors.futures.queue_state import QueueState
from tinkex_actors.transport.messages import HttpResponse
from tinkex_actors.transport.retry import ProgressTracker, RetryPolicy

__all__ = ["PollEntry", "PollLedger", "PollSpec"]

T = TypeVar("T")


def _identity(value: Any) -> Any:
    return value


@dataclasses.dataclass(frozen=True, slots=True)
class PollSpec(Generic[T]):
    """What to poll and how to read its result.

    `decode_json(result)` turns a completed JSON result into `T` (default: as parsed);
    `decode_proto(body)`, when given, reads a protobuf result and makes polls accept one.
    `owner` receives `QueueStateChange` messages; `progress` is the owning client's tracker
    (default: one per future); `policy` overrides the pool's RetryPolicy.
    """

    request_id: str
    request_type: str
    decode_json: Callable[[Any], T] = _identity
    decode_proto: Callable[[bytes], T] | None = None
    owner: ActorRef[Any] | None = None
    progress: ProgressTracker | None = None
    policy: RetryPolicy | None = None
    create_roundtrip_s: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.request_id, str) or not self.request_id:
            raise ValueError(
                f"PollSpec.request_id={self.request_id!r} is not valid; pass the non-empty "
                "request_id the server answered the submit with"
            )
        if not isinstance(self.request_type, str):
            raise ValueError(
                f"PollSpec.request_type={self.request_type!r} is not valid; pass the official "
                "name, e.g. 'ForwardBackward', 'OptimStep' or 'Sample'"
            )


class PollEntry:
    """One tracked future: its spec and the poll state, mutated only by its Poller."""

    __slots__ = (
        "bad_requests",
        "connection_errors",
        "driver",
        "future",
        "inflight",
        "iteration",
        "key",
        "last_reason",
        "last_state",
        "metadata_only",
        "pending",
        "policy",
        "progress",
        "rate_limits",
        "server_errors",
        "spec",
        "started",
        "timer",
    )

    def __init__(
        self,
        key: int,
        spec: PollSpec[Any],
        future: Future[Any],
        policy: RetryPolicy,
        progress: ProgressTracker,
        started: float,
    ) -> None:
        """A new entry: nothing polled yet, `started` on the pool's clock."""
        self.key = key
        self.spec = spec
        self.future = future
        self.policy = policy
        self.progress = progress
        self.started = started
        self.iteration = 0
        self.pending = 0
        self.server_errors = 0
        self.connection_errors = 0
        self.bad_requests = 0
        self.rate_limits = 0
        self.last_state = QueueState.ACTIVE
        self.last_reason: str | None = None
        self.metadata_only = True
        self.inflight: concurrent.futures.Future[HttpResponse] | None = None
        self.timer: Any = None
        self.driver = 0


class PollLedger:
    """The entries of one pool slot; outlives the Poller so a successor can adopt them."""

    def __init__(self) -> None:
        """An empty ledger; hold `lock` to read `entries` consistently."""
        self.lock = threading.Lock()
        self.entries: dict[int, PollEntry] = {}

    def add(self, entry: PollEntry) -> None:
        """Record a new entry."""
        with self.lock:
            self.entries[entry.key] = entry

    def get(self, key: int) -> PollEntry | None:
        """The entry of `key`, or None once it left the ledger."""
        return self.entries.get(key)

    def pop(self, key: int) -> PollEntry | None:
        """Remove and return the entry of `key` (None if already gone)."""
        with self.lock:
            return self.entries.pop(key, None)

    def snapshot(self) -> list[PollEntry]:
        """The entries now, as a list."""
        with self.lock:
            return list(self.entries.values())

    def drain(self) -> list[PollEntry]:
        """Remove and return every entry."""
        with self.lock:
            entries = list(self.entries.values())
            self.entries.clear()
            return entries
