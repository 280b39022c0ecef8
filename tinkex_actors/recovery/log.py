"""The recovery policy and the bounded log of one model's operations since its checkpoint.

With `ServiceClient(recovery=RecoveryPolicy(...))`, every operation of a TrainingClient is
recorded here before it is sent, with the user's Future. A `save_state` taken right after an
`optim_step` (there is no pending gradient then, so the checkpoint holds the whole model state)
is a checkpoint: the client takes one by itself every `checkpoint_every_steps` optimizer steps.
When a checkpoint's save has answered and every operation before it has settled, the log is
trimmed to what follows it: from that checkpoint plus the log, the model can be rebuilt exactly.

The log keeps to `max_log_bytes`. Past it, the payloads are dropped (the futures stay, so they
can be failed cleanly), the next `optim_step` is followed by a checkpoint whatever the step
count, and the model is not recoverable until that checkpoint lands.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from tinkex_actors.futures.future import Future

__all__ = ["Op", "OpKind", "OpLog", "RecoveryPolicy"]

OpKind = Literal["op", "step", "save", "checkpoint"]
"""`step`: an optim_step; `checkpoint`: a save_state right after a step (a recovery point);
`save`: any other save; `op`: everything else."""

DEFAULT_MAX_LOG_BYTES = 256 * 2**20
"""A quarter GiB of training data: ten steps of a large batch, well within a trainer's RAM."""


@dataclass(frozen=True)
class RecoveryPolicy:
    """How a ServiceClient rebuilds a lost session (opt-in: `ServiceClient(recovery=...)`).

    - `checkpoint_every_steps`: a `save_state` (weights and optimizer) every that many
      `optim_step`s of each TrainingClient; it bounds the operations to replay.
    - `max_log_bytes`: memory budget of each model's operation log (the data of the
      operations since its checkpoint); past it, that model is not recoverable until the next
      checkpoint lands.
    - `max_attempts`: consecutive recoveries without a single operation succeeding in between
      before giving up (`RecoveryFailedError`). An attempt waits for the server as any request
      does: a server that never comes back fails the run after about `max_attempts` times the
      client's `connection_lost_after_s`.
    - `checkpoint_prefix`: name prefix of the automatic checkpoints (each is deleted once a
      newer one is in place; your own `save_state` checkpoints are never deleted).
    """

    checkpoint_every_steps: int = 10
    max_log_bytes: int = DEFAULT_MAX_LOG_BYTES
    max_attempts: int = 3
    checkpoint_prefix: str = "tinkex-recovery"

    def __post_init__(self) -> None:
        for name in ("checkpoint_every_steps", "max_log_bytes", "max_attempts"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"RecoveryPolicy.{name}={value!r} is not valid; use a whole number >= 1"
                )
        prefix = self.checkpoint_prefix
        if not isinstance(prefix, str) or not prefix or "/" in prefix:
            raise ValueError(
                f"RecoveryPolicy.checkpoint_prefix={prefix!r} is not valid; use letters, "
                "digits, '.', '_' or '-'"
            )


@dataclass(eq=False)
class Op:
    """One recorded operation: what to call again, and the user's Future it answers."""

    index: int
    kind: OpKind
    method: str
    args: tuple[Any, ...] | None
    """None once dropped (over the budget): the op cannot be replayed."""
    kwargs: dict[str, Any]
    future: Future[Any]
    size: int
    step: int
    """How many optim_steps were recorded up to and including this op."""
    attempt: int = -1
    """The recovery generation of its last send (-1: not sent yet)."""
    outcome: tuple[bool, Any] | None = None
    """`(ok, result or error)` of its latest send, until handed to `future` in order."""


@dataclass
class _Landed:
    index: int
    path: str
    step: int


@dataclass
class OpLog:
    """The operations of one model since its latest adopted checkpoint (thread-safe)."""

    max_bytes: int
    checkpoint_every_steps: int
    checkpoint_path: str | None = None
    safe_step: int = 0
    """optim_steps held by `checkpoint_path` (0 before the first checkpoint)."""
    steps: int = 0
    bytes: int = 0
    overflowed: bool = False
    lock: threading.RLock = field(default_factory=threading.RLock)
    _ops: list[Op] = field(default_factory=list)
    _next_index: int = 0
    _last_kind: OpKind | None = None
    _payload_from: int | None = None
    _checkpoint_index: int = -1
    _landed: list[_Landed] = field(default_factory=list)
    _force_checkpoint: bool = False

    def record(
        self,
        kind: OpKind,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        future: Future[Any],
        size: int,
    ) -> Op:
        """Append an operation (a `save` right after a step becomes a `checkpoint`)."""
        with self.lock:
            if kind == "save" and self._last_kind in ("step", "checkpoint"):
                kind = "checkpoint"
            if kind == "step":
                self.steps += 1
            # A checkpoint's own arguments are a name: kept, so it can always be sent.
            keep = not self.overflowed or self._payload_from is not None or kind == "checkpoint"
            op = Op(
                self._next_index,
                kind,
                method,
                args if keep else None,
                kwargs if keep else {},
                future,
                size if keep else 0,
                self.steps,
            )
            self._next_index += 1
            self._last_kind = kind
            if kind == "checkpoint" and self.overflowed and self._payload_from is None:
                self._payload_from = op.index
            self._ops.append(op)
            self.bytes += op.size
            if self.bytes > self.max_bytes:
                self._overflow()
            return op

    def _overflow(self) -> None:
        """Over the budget: drop every payload; what follows the next checkpoint is kept."""
        self.overflowed = True
        self._payload_from = None
        self._force_checkpoint = True
        for op in self._ops:
            op.args, op.kwargs, op.size = None, {}, 0
        self.bytes = 0

    def checkpoint_due(self) -> bool:
        """True right after a step that should be followed by an automatic checkpoint."""
        with self.lock:
            if self._last_kind != "step":
                return False
            return self._force_checkpoint or self.steps % self.checkpoint_every_steps == 0

    def checkpoint_taken(self) -> None:
        """The automatic checkpoint was recorded: no forced one is owed any more."""
        with self.lock:
            self._force_checkpoint = False

    def landed(self, op: Op, path: str) -> None:
        """The save of checkpoint `op` answered with `path`; adopt it once all before settled."""
        with self.lock:
            if op.kind == "checkpoint" and op.index > self._checkpoint_index:
                self._landed.append(_Landed(op.index, path, op.step))
                self._landed.sort(key=lambda item: item.index)
            self.advance()

    def advance(self) -> bool:
        """Adopt the landed checkpoints whose earlier operations have all settled; True if one
        was adopted (the log was trimmed)."""
        adopted = False
        with self.lock:
            while self._landed:
                candidate = self._landed[0]
                if any(o.index < candidate.index and not o.future.done() for o in self._ops):
                    break
                self._landed.pop(0)
                if candidate.index <= self._checkpoint_index:
                    continue
                self._checkpoint_index = candidate.index
                self.checkpoint_path = candidate.path
                self.safe_step = candidate.step
                self._ops = [o for o in self._ops if o.index > candidate.index]
                self.bytes = sum(o.size for o in self._ops)
                if (
                    self.overflowed
                    and self._payload_from is not None
                    and candidate.index >= self._payload_from
                ):
                    self.overflowed = False
                    self._payload_from = None
                adopted = True
        return adopted

    def ops(self) -> list[Op]:
        """The operations to replay after the checkpoint, in order."""
        with self.lock:
            return list(self._ops)

    def unrecoverable(self) -> str | None:
        """Why the model cannot be rebuilt now (None: it can)."""
        with self.lock:
            if self.overflowed:
                return (
                    f"the operations since the last checkpoint passed max_log_bytes="
                    f"{self.max_bytes}; raise RecoveryPolicy.max_log_bytes or lower "
                    "checkpoint_every_steps"
                )
            return None

    def fail_unsettled(self, make_error: Callable[[], BaseException]) -> int:
        """Fail every recorded future not settled yet; returns how many."""
        with self.lock:
            futures = [o.future for o in self._ops]
        return sum(1 for f in futures if not f.done() and f.set_exception(make_error()))
