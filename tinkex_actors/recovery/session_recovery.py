"""Session recovery (opt-in): rebuild a lost session and replay what it lost.

    with ServiceClient(recovery=RecoveryPolicy(checkpoint_every_steps=10)) as service:
        trainer = service.create_lora_training_client("tiny-byte-lm", seed=0)

With a policy, each TrainingClient is a `RecoverableTrainingClient`: the user's Futures are its
own, answered from internal ones, and every operation is recorded in the model's `OpLog`
(`tinkex_actors.recovery.log`). When the session or a model is lost (a heartbeat or a request
answered 404/410, the server restarted empty, or the connection given up), the internal
futures fail, the user's do not: `SessionRecovery` opens a new session in a thread of its own,
recreates each model from its latest checkpoint with the optimizer state (or from its origin
when none landed yet), replays the recorded operations in order, and relays their answers.
Samplers (`tinkex_actors.recovery.sampling`) get a new sampling session over the same weights,
and their samples caught by the loss are sent again.

Exactly once: every send of an op is stamped with the handle's generation, and only the answer
of its latest send may settle the user's Future; an op whose Future was already answered is
replayed for its effect only (`Future.set_result` never settles twice). When a model cannot be
rebuilt (log over budget, checkpoint gone, `max_attempts` used up), its unsettled Futures and
later calls fail with `RecoveryFailedError`, naming the last safe step and its checkpoint.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Protocol

from supervisors import Registry, terminate_child
from supervisors.library_logging import get_logger
from tinkex_actors.clients.sampling import SamplingClient
from tinkex_actors.clients.sampling_actor import SamplerState
from tinkex_actors.clients.training import TrainingClient
from tinkex_actors.clients.training_sequencer import TrainingState
from tinkex_actors.errors import ClientClosedError, RecoveryFailedError
from tinkex_actors.recovery.log import RecoveryPolicy
from tinkex_actors.recovery.sampling import RecoverableSamplingClient, SampleCall
from tinkex_actors.recovery.training import (
    ImpossibleError,
    ModelFactory,
    Origin,
    RecoverableTrainingClient,
    is_session_loss,
)
from tinkex_actors.transport.retry import backoff_s

__all__ = [
    "Origin",
    "RecoverableService",
    "RecoverableTrainingClient",
    "RecoveryPolicy",
    "SessionRecovery",
    "is_session_loss",
]

log = get_logger("tinkex_actors.recovery.session_recovery")

RETIRE_TIMEOUT_S = 2.0


class RecoverableService(ModelFactory, Protocol):
    """What a recovery needs of its ServiceClient (`service.ServiceClient`), which holds it.

    The ServiceClient's lock guards the lists of its clients' states.
    """

    session_id: str
    registry: Registry
    _lock: threading.Lock
    _training_states: list[TrainingState]
    _sampler_states: list[SamplerState]

    def reconnect(
        self,
        tags: list[str] | None = None,
        *,
        cancel: concurrent.futures.Future[Any] | None = None,
    ) -> str:
        """Open a new session after the old one was lost; returns its id."""
        ...

    def report(self, event_name: str, event_data: dict[str, Any] | None = None) -> None:
        """Send a telemetry event of the session."""
        ...

    def _open_sampling_session(
        self, model_path: str | None, base_model: str | None
    ) -> tuple[str, str | None]:
        """A new sampling session over saved weights or a base model: (its id, base model)."""
        ...


class SessionRecovery:
    """The recovery of one ServiceClient: one rebuild at a time, in a thread of its own."""

    def __init__(
        self,
        service: RecoverableService,
        policy: RecoveryPolicy,
        *,
        sleep: Callable[[float], bool] | None = None,
    ) -> None:
        self.policy = policy
        self._service = weakref.proxy(service)
        self._lock = threading.Lock()
        self.generation = 0
        self.recovering = False
        self.recoveries = 0
        """Recoveries completed (for tests and reports)."""
        self.running = threading.Event()
        """Set while a rebuild is under way."""
        self.recovered = threading.Event()
        """Set once a rebuild has completed (never cleared)."""
        self._again = False
        self._attempts = 0
        self._closed = threading.Event()
        self._cancel: concurrent.futures.Future[None] = concurrent.futures.Future()
        """Set at close: ends a rebuild's wait for the new session."""
        self._sleep = sleep or self._closed.wait
        self._handles: list[RecoverableTrainingClient] = []
        self._samplers: list[RecoverableSamplingClient] = []
        self._gave_up: RecoveryFailedError | None = None
        self._thread: threading.Thread | None = None

    def adopt(self, client: TrainingClient, origin: Origin) -> RecoverableTrainingClient:
        """The recoverable handle of a client just made."""
        handle = RecoverableTrainingClient(client, self, origin)
        with self._lock:
            self._handles.append(handle)
        return handle

    def adopt_sampler(self, client: SamplingClient) -> RecoverableSamplingClient:
        """The recoverable handle of a sampler just made."""
        sampler = RecoverableSamplingClient(client, self)
        with self._lock:
            self._samplers.append(sampler)
        return sampler

    def hold_sample(
        self, sampler: RecoverableSamplingClient, call: SampleCall, gen: int, error: BaseException
    ) -> bool:
        """A sample sent in generation `gen` met a loss: hold it for the rebuild (True), or
        False when the sampler was given a new session since (send it again now)."""
        user = call[1]
        with self._lock:
            if self._closed.is_set():
                failure: BaseException | None = ClientClosedError("the ServiceClient closed")
            elif self._gave_up is not None:
                failure = self._gave_up
            elif self.recovering or gen >= self.generation:
                failure = None
                sampler.waiting.append(call)
                start = not self.recovering
            else:
                return False
        if failure is not None:
            user.set_exception(failure)
        elif start:
            self.trigger(gen, error)
        return True

    def _release_samples(self, error: BaseException | None) -> int:
        """Send the held samples again (or fail them with `error`); returns how many."""
        with self._lock:
            held = [(sampler, sampler.waiting) for sampler in self._samplers]
            for sampler in self._samplers:
                sampler.waiting = []
        count = 0
        for sampler, calls in held:
            for args, user in calls:
                count += 1
                if error is None:
                    sampler.send(args, user)
                else:
                    user.set_exception(error)
        return count

    def succeeded(self) -> None:
        """An operation answered: the server is back for good; attempts start over."""
        self._attempts = 0

    def trigger(self, gen: int, error: BaseException) -> None:
        """A loss seen by an op sent in generation `gen` (or by the session's watcher)."""
        with self._lock:
            if self._closed.is_set() or self._gave_up is not None or gen < self.generation:
                return  # already rebuilt (or being rebuilt) past that send, or given up
            if self.recovering:
                self._again = True
                return
            self.recovering = True
            self.running.set()
            self.generation += 1
            for handle in self._handles:
                handle._deferred = True  # before the thread runs: it clears them
            thread = threading.Thread(
                target=self._run, args=(error,), daemon=True, name="tinkex-recovery"
            )
            self._thread = thread
            thread.start()
        log.warning("session_recovery_started", error=str(error), generation=self.generation)

    def session_lost(self, error: BaseException) -> None:
        """The client's session was declared lost: rebuild it now, even if nothing is pending."""
        self.trigger(self.generation, error)

    def _run(self, error: BaseException) -> None:
        try:
            self._rebuild_all(error)
        finally:
            self.running.clear()

    def _rebuild_all(self, error: BaseException) -> None:
        cause = str(error)
        while True:
            with self._lock:
                gen = self.generation
                self._again = False
                self._attempts += 1
                attempt = self._attempts
            started = time.monotonic()
            failure = self._attempt(gen, attempt, cause, started)
            with self._lock:
                if self._closed.is_set():
                    self.recovering = False
                    return
                done = failure is None and not self._again
                if done:
                    self.recovering = False
                    self.recoveries += 1
                    self.recovered.set()
            if done:
                self._release_samples(None)
                return
            with self._lock:
                if self._attempts >= self.policy.max_attempts:
                    handles = list(self._handles)
                    reason = (
                        f"{self.policy.max_attempts} recovery attempts failed "
                        f"(RecoveryPolicy.max_attempts); last error: {failure or cause}"
                    )
                    self._gave_up = RecoveryFailedError(
                        f"session recovery failed: {reason}; make a new ServiceClient and new "
                        "samplers from their weights",
                        reason=reason,
                    )
                    self.recovering = False
                    break
                self.generation += 1
                handles = list(self._handles)
            for handle in handles:
                handle._deferred = True
            cause = failure or cause
            if self._sleep(backoff_s(attempt - 1, base_s=1.0, max_s=10.0, jitter=0.0)):
                return  # closed while waiting
        failed = sum(h._fail(h._give_up_error(reason)) for h in handles if h._failed is None)
        failed += self._release_samples(self._gave_up)
        log.error("session_recovery_failed", reason=reason, failed=failed)
        self._report("session_recovery_failed", {"reason": reason, "failed_futures": failed})

    def _attempt(self, gen: int, attempt: int, cause: str, started: float) -> str | None:
        """One rebuild of everything; None when done, else what went wrong."""
        service = self._service
        try:
            old_session = service.session_id
            new_session = service.reconnect(cancel=self._cancel)
        except ClientClosedError:
            self._closed.set()
            return "the client was closed"
        except Exception as exc:
            log.warning("session_recovery_attempt_failed", attempt=attempt, error=repr(exc))
            return repr(exc)
        # Samplers first: a replayed op may answer its user, who may then sample at once.
        samplers = reopen_samplers(service)
        with self._lock:
            handles = list(self._handles)
        replayed = 0
        models = []
        for handle in handles:
            if handle._failed is not None:
                continue
            try:
                replayed += handle._rebuild(service, gen)
                models.append(handle.model_id)
            except ImpossibleError as exc:
                error = handle._give_up_error(str(exc))
                failed = handle._fail(error)
                log.error("model_recovery_impossible", model_id=handle.model_id, error=str(error))
                self._report(
                    "model_recovery_impossible",
                    {"model_id": handle.model_id, "reason": str(exc), "failed_futures": failed},
                )
            except Exception as exc:
                log.warning("session_recovery_attempt_failed", attempt=attempt, error=repr(exc))
                return repr(exc)
        event = {
            "old_session_id": old_session,
            "session_id": new_session,
            "models": models,
            "samplers": samplers,
            "replayed_ops": replayed,
            "attempt": attempt,
            "cause": cause,
            "duration_s": round(time.monotonic() - started, 3),
        }
        log.warning("session_recovered", **event)
        self._report("session_recovered", event)
        return None

    def retire(self, state: TrainingState, actor: Any) -> None:
        """Stop the actor of a model that was replaced (its state stays failed)."""
        service = self._service
        with service._lock:
            if state in service._training_states:
                service._training_states.remove(state)
        sup = service.registry.whereis("training_clients")
        try:
            ref = actor.resolve(RETIRE_TIMEOUT_S) if hasattr(actor, "resolve") else actor
            if sup is not None:
                terminate_child(sup, ref, timeout_s=RETIRE_TIMEOUT_S)
        except Exception as exc:  # best effort: an old actor left over only costs a thread
            log.info("retire_old_model_actor_failed", model_id=state.model_id, error=repr(exc))

    def _report(self, name: str, data: dict[str, Any]) -> None:
        try:
            self._service.report(name, data)
        except Exception as exc:  # telemetry never breaks a recovery
            log.debug("recovery_report_failed", error=repr(exc))

    def close(self, error: BaseException, timeout_s: float = 0.5) -> int:
        """The client closes: no more rebuilds; unsent recorded Futures fail with `error`."""
        self._closed.set()
        if not self._cancel.done():
            self._cancel.set_result(None)
        with self._lock:
            handles = list(self._handles)
            thread = self._thread
        failed = sum(h._log.fail_unsettled(lambda: error) for h in handles)
        failed += self._release_samples(error)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)
        return failed


def reopen_samplers(service: RecoverableService) -> int:
    """Give every in-process sampler a new sampling session over the same weights; returns
    how many (their pending samples failed with the loss; later calls go to the new one)."""
    with service._lock:
        states = list(service._sampler_states)
    reopened = 0
    for state in states:
        try:
            sid, _ = service._open_sampling_session(
                state.model_path, None if state.model_path else state.base_model
            )
        except Exception as exc:
            log.warning("sampler_recovery_failed", error=repr(exc))
            continue
        with state.lock:
            state.sampling_session_id = sid
            if state.lost is not None and is_session_loss(state.lost):
                state.lost = None
        reopened += 1
    return reopened
