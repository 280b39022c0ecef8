"""The TrainingClient of a ServiceClient with a recovery policy (see `session_recovery`).

Its Futures are its own, answered from internal ones: every operation is recorded in the
model's `OpLog` before it is sent, stamped with the handle's generation when sent, and only the
answer of its latest send may settle the user's Future, in call order. A loss (`is_session_loss`)
does not reach the user: it asks the `SessionRecovery` for a rebuild, which swaps a new model in
under the same handle and sends every recorded operation again.
"""

from __future__ import annotations

import collections
import itertools
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from supervisors.library_logging import get_logger
from tinkex_actors import types
from tinkex_actors.clients.training import TrainingClient
from tinkex_actors.clients.training_requests import check_data, check_loss, check_name
from tinkex_actors.clients.training_sequencer import TrainingState, estimate_bytes
from tinkex_actors.errors import (
    APIConnectionError,
    APIStatusError,
    ClientClosedError,
    RecoveryFailedError,
    SessionExpiredError,
)
from tinkex_actors.futures.future import CancelledError, Future
from tinkex_actors.recovery.log import Op, OpKind, OpLog, RecoveryPolicy
from tinkex_actors.rest.rest_client import RestClient

__all__ = [
    "ModelFactory",
    "Origin",
    "RecoverableTrainingClient",
    "TrainingRecovery",
    "is_session_loss",
]

log = get_logger("tinkex_actors.recovery.session_recovery")

OP_OVERHEAD_BYTES = 256
"""What an op costs in the log beyond its data (the record, its Future, small arguments)."""
_REQUEST_TYPES = {
    "forward": "Forward",
    "forward_backward": "ForwardBackward",
    "optim_step": "OptimStep",
    "save_state": "SaveWeights",
    "save_weights_for_sampler": "SaveWeightsForSampler",
    "load_state": "LoadWeights",
    "load_state_with_optimizer": "LoadWeights",
    "unload_model": "UnloadModel",
}


def is_session_loss(error: BaseException) -> bool:
    """True for an error that means the session or the model is gone on the server (what a
    recovery rebuilds), not for the user's own mistakes or a closed client."""
    if isinstance(error, RecoveryFailedError | ClientClosedError):
        return False
    if isinstance(error, SessionExpiredError):
        return True
    if isinstance(error, APIStatusError) and error.status_code in (404, 410):
        return "tinker://" not in _detail(error)  # a missing checkpoint is the caller's path
    return False


def _detail(error: APIStatusError) -> str:
    """What the server said (not our hint, which names tinker:// paths in general)."""
    body = error.body
    if isinstance(body, Mapping):
        return str(body.get("detail", body))
    return str(body)


@dataclass(frozen=True)
class Origin:
    """How a model was first made: a fresh LoRA (`lora`) or a checkpoint (`path`)."""

    base_model: str
    lora: types.LoraConfig | None = None
    user_metadata: dict[str, Any] | None = None
    path: str | None = None
    optimizer: bool = True
    optimizer_config: types.OptimizerConfig | None = None


class TrainingRecovery(Protocol):
    """What a recoverable model needs of the recovery (`recovery.SessionRecovery`)."""

    policy: RecoveryPolicy
    generation: int
    """The rebuild generation: bumped by each rebuild of the session."""

    def trigger(self, gen: int, error: BaseException) -> None:
        """A loss seen by an op sent in generation `gen`: rebuild (once)."""
        ...

    def succeeded(self) -> None:
        """An operation answered: the server is back."""
        ...

    def retire(self, state: TrainingState, actor: Any) -> None:
        """Stop the actor of a model that was replaced."""
        ...


class ModelFactory(Protocol):
    """How a rebuild makes the new model (the ServiceClient's own creation steps)."""

    def _from_state(
        self,
        path: str,
        optimizer: bool,
        base_model: str | None = None,
        user_metadata: dict[str, str] | None = None,
        weights_access_token: str | None = None,
        optimizer_config: types.OptimizerConfig | None = None,
        recover: bool = False,
    ) -> TrainingClient:
        """A new model loaded from the checkpoint at `path`."""
        ...

    def _create_model(
        self,
        base_model: str,
        lora: types.LoraConfig,
        user_metadata: dict[str, Any] | None,
        optimizer: types.OptimizerConfig | None = None,
    ) -> TrainingClient:
        """A new LoRA model on `base_model`."""
        ...


class ImpossibleError(Exception):
    """This model cannot be rebuilt (a reason for the user, not a retry)."""


class RecoverableTrainingClient(TrainingClient):
    """A TrainingClient whose operations survive a lost session (see the module docstring)."""

    def __init__(self, inner: TrainingClient, recovery: TrainingRecovery, origin: Origin) -> None:
        super().__init__(
            inner._state, inner._actor, inner._transport, sampling_factory=inner._sampling_factory
        )
        self._recovery = recovery
        self._origin = origin
        policy = recovery.policy
        self._log = OpLog(policy.max_log_bytes, policy.checkpoint_every_steps)
        self._gen = recovery.generation
        self._deferred = False
        """Set from a loss until the replay is sent: new calls are recorded, not sent."""
        self._failed: RecoveryFailedError | None = None
        self._auto = itertools.count(1)
        self._order: collections.deque[Op] = collections.deque()
        self._order_lock = threading.RLock()
        self.pruning: list[Future[None]] = []
        """Deletions of replaced automatic checkpoints still under way."""

    @property
    def op_log(self) -> OpLog:
        """The operations recorded since this model's latest checkpoint."""
        return self._log

    # -- recording ---------------------------------------------------------------------------

    def forward(
        self,
        data: Sequence[types.Datum],
        loss_fn: str,
        loss_fn_config: Mapping[str, Any] | None = None,
    ) -> Future[types.ForwardBackwardOutput]:
        """Compute the loss and per-datum outputs without accumulating gradients (recorded)."""
        return self._record_pass("forward", data, loss_fn, loss_fn_config)

    def forward_backward(
        self,
        data: Sequence[types.Datum],
        loss_fn: str,
        loss_fn_config: Mapping[str, Any] | None = None,
    ) -> Future[types.ForwardBackwardOutput]:
        """Compute the loss and accumulate its gradients (recorded for replay)."""
        return self._record_pass("forward_backward", data, loss_fn, loss_fn_config)

    def _record_pass(
        self,
        method: str,
        data: Sequence[types.Datum],
        loss_fn: str,
        loss_fn_config: Mapping[str, Any] | None,
    ) -> Future[types.ForwardBackwardOutput]:
        """Check a forward(_backward) call as the plain client does, then record and send it."""
        items = check_data(data)
        check_loss(loss_fn, loss_fn_config)
        size = sum(estimate_bytes(d) for d in items)
        return self._call("op", method, (items, loss_fn, loss_fn_config), size)

    def optim_step(
        self,
        optim_params: types.OptimParams | None = None,
        *,
        adam_params: types.AdamParams | None = None,
    ) -> Future[types.OptimStepResponse]:
        """Apply the accumulated gradients (recorded; may be followed by a checkpoint)."""
        params = optim_params if optim_params is not None else adam_params
        if not isinstance(params, types.AdamParams | types.DimuonParams):
            raise TypeError(
                f"optim_params is a {type(params).__name__}; pass "
                "tinkex_actors.types.AdamParams(learning_rate=...)"
            )
        return self._call("step", "optim_step", (params,), 0)

    def save_state(
        self,
        name: str,
        ttl_seconds: int | None = None,
        overwrite: bool = False,
        user_metadata: dict[str, str] | None = None,
    ) -> Future[types.SaveWeightsResponse]:
        """Save weights and optimizer state (right after an optim_step, also a checkpoint)."""
        check_name(name)
        return self._call("save", "save_state", (name, ttl_seconds, overwrite, user_metadata), 0)

    def save_weights_for_sampler(
        self, name: str, ttl_seconds: int | None = None, user_metadata: dict[str, str] | None = None
    ) -> Future[types.SaveWeightsForSamplerResponse]:
        """Save sampler weights (recorded)."""
        check_name(name)
        return self._call(
            "op", "save_weights_for_sampler", (name, ttl_seconds, user_metadata), 0
        )

    def load_state(
        self, path: str, weights_access_token: str | None = None
    ) -> Future[types.LoadWeightsResponse]:
        """Load weights from a checkpoint (recorded)."""
        _check_tinker_path(path)
        return self._call("op", "load_state", (path, weights_access_token), 0)

    def load_state_with_optimizer(
        self, path: str, weights_access_token: str | None = None
    ) -> Future[types.LoadWeightsResponse]:
        """Load weights and optimizer state from a checkpoint (recorded)."""
        _check_tinker_path(path)
        return self._call("op", "load_state_with_optimizer", (path, weights_access_token), 0)

    def unload_model(self) -> Future[types.UnloadModelResponse]:
        """Free the model on the server (recorded)."""
        return self._call("op", "unload_model", (), 0)

    def _call(self, kind: OpKind, method: str, args: tuple[Any, ...], size: int) -> Future[Any]:
        lost: BaseException | None = None
        with self._log.lock:
            if self._failed is not None:
                raise self._failed
            lost = self._state.lost
            if lost is not None and not is_session_loss(lost):
                raise lost
            user: Future[Any] = Future(request_type=_REQUEST_TYPES[method])
            internal: Future[Any] | None = None
            if lost is None and not self._deferred:
                try:
                    internal = getattr(TrainingClient, method)(self, *args)
                except BaseException as exc:
                    if not is_session_loss(exc):
                        raise  # a refused call: nothing was recorded
                    lost = exc  # lost meanwhile: recorded, sent by the rebuild
            op = self._record(kind, method, args, user, size)
            if internal is not None:
                self._watch(op, internal)
            if self._log.checkpoint_due():
                self._checkpoint()
            gen = self._gen
        if lost is not None:
            self._recovery.trigger(gen, lost)
        return user

    def _record(
        self, kind: OpKind, method: str, args: tuple[Any, ...], user: Future[Any], size: int
    ) -> Op:
        op = self._log.record(kind, method, args, {}, user, size + OP_OVERHEAD_BYTES)
        with self._order_lock:
            self._order.append(op)
        return op

    def _checkpoint(self) -> None:
        """Record (and send, unless deferred) an automatic checkpoint; log lock held."""
        name = f"{self._recovery.policy.checkpoint_prefix}-{next(self._auto)}-step{self._log.steps}"
        future: Future[Any] = Future(request_type="SaveWeights")
        op = self._record("save", "save_state", (name, None), future, 0)
        self._log.checkpoint_taken()
        if not self._deferred and self._state.lost is None:
            self._send(op)

    # -- sending and settling ----------------------------------------------------------------

    def _send(self, op: Op) -> None:
        """Send `op` to the current model, stamped with this handle's generation (lock held)."""
        assert op.args is not None
        op.attempt = self._gen
        try:
            internal = getattr(TrainingClient, op.method)(self, *op.args, **op.kwargs)
        except BaseException as exc:
            if is_session_loss(exc):
                gen = self._gen
                threading.Thread(  # never trigger while holding the log lock
                    target=self._recovery.trigger, args=(gen, exc), daemon=True,
                    name="tinkex-recovery-trigger",
                ).start()
            else:
                op.outcome = (False, exc)
                self._flush()
            return
        self._watch(op, internal)

    def _watch(self, op: Op, internal: Future[Any]) -> None:
        op.attempt = self._gen
        gen = self._gen
        internal.add_done_callback(lambda f: self._settled(op, gen, f))

    def _settled(self, op: Op, gen: int, internal: Future[Any]) -> None:
        if op.attempt != gen:
            return  # an earlier send of a replayed op: its latest send answers
        before = self._log.checkpoint_path
        error = internal.exception(0) if not internal.cancelled() else None
        if error is not None and is_session_loss(error) and self._failed is None:
            self._recovery.trigger(gen, error)
            return
        request_id = getattr(internal, "request_id", None)
        if request_id is not None and not op.future.done():
            op.future.request_id = request_id
        if error is None and not internal.cancelled():
            result = internal.result(0)
            if op.kind == "checkpoint":  # before the Future: its waiter sees the log trimmed
                self._log.landed(op, str(result.path))
            op.outcome = (True, result)
            self._recovery.succeeded()
        else:
            op.outcome = (False, error or CancelledError())
        self._flush()
        self._log.advance()
        if before is not None and self._log.checkpoint_path != before:
            self._prune(before)

    def _prune(self, path: str) -> None:
        """Delete an automatic checkpoint a newer one replaced (best effort, in the
        background): a run of days must not fill the server's storage with them."""
        name = path.rsplit("/", 1)[-1]
        if not name.startswith(f"{self._recovery.policy.checkpoint_prefix}-"):
            return  # the user's own checkpoints are the user's
        deleted = RestClient(self._transport).delete_checkpoint_from_tinker_path(path)

        def done(f: Future[None]) -> None:
            error = f.exception(0) if not f.cancelled() else None
            if error is not None:
                log.info("old_recovery_checkpoint_kept", path=path, error=str(error))

        deleted.add_done_callback(done)
        self.pruning = [f for f in self.pruning if not f.done()] + [deleted]

    def _flush(self) -> None:
        """Hand outcomes to the user's Futures in the order of the calls (pollers answer in
        any order): a Future settles only after every earlier one did."""
        with self._order_lock:
            while self._order:
                head = self._order[0]
                if not head.future.done():
                    if head.outcome is None:
                        return
                    ok, value = head.outcome
                    if ok:
                        head.future.set_result(value)
                    else:
                        head.future.set_exception(value)
                self._order.popleft()

    # -- rebuilding --------------------------------------------------------------------------

    def _rebuild(self, service: ModelFactory, gen: int) -> int:
        """Recreate the model in the (new) session and replay the log; returns ops replayed."""
        reason = self._log.unrecoverable()
        if reason is not None:
            raise ImpossibleError(reason)
        checkpoint = self._log.checkpoint_path
        path = checkpoint or self._origin.path
        try:
            if path is not None:
                optimizer = True if checkpoint is not None else self._origin.optimizer
                inner = service._from_state(
                    path,
                    optimizer=optimizer,
                    base_model=self._origin.base_model,
                    user_metadata=self._origin.user_metadata,
                    optimizer_config=self._origin.optimizer_config,
                )
            else:
                assert self._origin.lora is not None
                inner = service._create_model(
                    self._origin.base_model,
                    self._origin.lora,
                    self._origin.user_metadata,
                    self._origin.optimizer_config,
                )
        except BaseException as exc:
            if path is not None and _is_refusal(exc):
                raise ImpossibleError(f"the checkpoint {path} could not be loaded: {exc}") from exc
            raise
        old_state, old_actor = self._state, self._actor
        with self._log.lock:
            self._state, self._actor = inner._state, inner._actor
            self._gen = gen
            ops = self._log.ops()
            for op in ops:
                self._send(op)
            self._deferred = False
        self._recovery.retire(old_state, old_actor)
        return len(ops)

    def _fail(self, error: RecoveryFailedError) -> int:
        """Give this model up: unsettled Futures and later calls fail with `error`."""
        with self._log.lock:
            self._failed = error
            self._deferred = False
        return self._log.fail_unsettled(lambda: error)

    def _give_up_error(self, reason: str) -> RecoveryFailedError:
        path = self._log.checkpoint_path or self._origin.path
        step = self._log.safe_step
        where = (
            f"the last safe step is {step} (optim_steps), saved in {path}; resume with "
            f"create_training_client_from_state_with_optimizer({path!r})"
            if path is not None
            else "no checkpoint was taken yet; the last safe step is the model's creation "
            "(step 0): create the model again"
        )
        return RecoveryFailedError(
            f"session recovery failed for model {self.model_id}: {reason}; {where}",
            last_safe_step=step,
            checkpoint_path=path,
            reason=reason,
        )


def _check_tinker_path(path: object) -> None:
    if not isinstance(path, str) or not path.startswith("tinker://"):
        raise ValueError(
            f"path={path!r} is not a tinker path; pass 'tinker://<run>/weights/<name>'"
        )


def _is_refusal(error: BaseException) -> bool:
    """A definite no from the server (not an outage nor a loss): the checkpoint is gone."""
    if isinstance(error, APIConnectionError | SessionExpiredError | TimeoutError):
        return False
    if isinstance(error, APIStatusError):
        if error.status_code in (408, 429) or error.status_code >= 500:
            return False
        return "tinker://" in _detail(error) or not is_session_loss(error)
    return not isinstance(error, ClientClosedError)
