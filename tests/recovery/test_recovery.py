"""Session recovery over real HTTP against the embedded server in this process."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from supervisors.testing import FakeClock
from supervisors.timers import TimerService
from tinkex_actors import RecoveryPolicy, ServiceClient, types
from tinkex_actors.clients.session import SessionLost, Subscribe
from tinkex_actors.errors import ClientClosedError, RecoveryFailedError
from tinkex_actors.futures.future import Future
from tinkex_actors.local import LocalServer
from tinkex_actors.recovery.session_recovery import RecoverableTrainingClient

from .conftest import KEY, batch

WAIT_S = 60.0
ADAM = types.AdamParams(learning_rate=1e-2)


@pytest.fixture
def server() -> Iterator[LocalServer]:
    """An embedded server in this process, for one test."""
    with LocalServer(api_key=KEY) as local:
        yield local


class Settlements:
    """Records the order in which futures settle, and how many times each did."""

    def __init__(self) -> None:
        self.order: list[int] = []
        self._lock = threading.Lock()

    def watch(self, index: int, future: Future[Any]) -> Future[Any]:
        """Record `future`'s settlement under `index`; returns it."""

        def done(_: Future[Any]) -> None:
            with self._lock:
                self.order.append(index)

        future.add_done_callback(done)
        return future


def _logprobs(trainer: Any) -> list[np.ndarray]:
    out = trainer.forward(batch(), "cross_entropy").result(WAIT_S)
    return [o["logprobs"].to_numpy() for o in out.loss_fn_outputs]


def _train(
    server: LocalServer,
    steps: int,
    policy: RecoveryPolicy | None,
    expire_at: int | None = None,
    *,
    settle_first: bool = True,
) -> tuple[list[np.ndarray], list[float], Settlements, str, str, int]:
    """`steps` fb+optim steps (seed 0); the session expired after step `expire_at` was sent.
    Returns final logprobs, the losses, the settlements, first and last model id and the
    number of recoveries."""
    seen = Settlements()
    with ServiceClient(base_url=server.url, api_key=KEY, recovery=policy) as service:
        trainer = service.create_lora_training_client("tiny-byte-lm", rank=4, seed=0).result(
            WAIT_S
        )
        first_model = trainer.model_id
        futures: list[Future[Any]] = []
        for step in range(steps):
            fb = trainer.forward_backward(batch(), "cross_entropy")
            futures.append(seen.watch(len(futures), fb))
            futures.append(seen.watch(len(futures), trainer.optim_step(ADAM)))
            if step == expire_at:
                if settle_first:
                    futures[-1].result(WAIT_S)
                server.expire_session(service.session_id)
        results = [f.result(WAIT_S) for f in futures]
        losses = [float(r.metrics["loss:sum"]) for r in results[::2]]
        final = _logprobs(trainer)
        recoveries = service._recovery.recoveries if service._recovery else 0
        return final, losses, seen, first_model, trainer.model_id, recoveries


class TestExpiredSession:
    def test_training_goes_on_with_every_future_once_in_order(self, server: LocalServer) -> None:
        """The session expires mid-run: training continues on a new model, every future
        settles once and in order, and the weights equal those of an undisturbed run."""
        policy = RecoveryPolicy(checkpoint_every_steps=3)
        clean, clean_losses, _, _, _, _ = _train(server, 10, None)
        final, losses, seen, first, last, recoveries = _train(server, 10, policy, expire_at=4)
        assert recoveries == 1 and first != last
        assert seen.order == list(range(20))
        recovered = [
            e for e in server.service.telemetry_events if e.get("event_name") == "session_recovered"
        ]
        assert len(recovered) == 1, "the recovery is sent as a telemetry event"
        assert recovered[0]["event_data"]["models"] == [last]
        assert losses == clean_losses
        assert all(np.array_equal(a, b) for a, b in zip(final, clean, strict=True))

    def test_loss_with_requests_in_flight(self, server: LocalServer) -> None:
        """Expired while its requests are still queued or polled: the same outcome."""
        policy = RecoveryPolicy(checkpoint_every_steps=2)
        clean, clean_losses, _, _, _, _ = _train(server, 6, None)
        final, losses, seen, _, _, recoveries = _train(
            server, 6, policy, expire_at=2, settle_first=False
        )
        assert recoveries >= 1 and sorted(seen.order) == list(range(12))
        assert losses == clean_losses
        assert all(np.array_equal(a, b) for a, b in zip(final, clean, strict=True))

    def test_idle_client_recovers_when_a_heartbeat_finds_the_loss(
        self, server: LocalServer
    ) -> None:
        """Nothing pending: the heartbeat that meets the expired session starts the rebuild at
        once, and the next call goes to the new model."""
        clock = FakeClock(1000.0)
        with ServiceClient(
            base_url=server.url, api_key=KEY, recovery=RecoveryPolicy(), timers=TimerService(clock)
        ) as service:
            trainer = service.create_lora_training_client("tiny-byte-lm", rank=4, seed=0).result(
                WAIT_S
            )
            trainer.forward_backward(batch(), "cross_entropy").result(WAIT_S)
            before, old_session = trainer.model_id, service.session_id
            server.expire_session(old_session)
            clock.advance(10.0)  # the heartbeat's turn
            assert service._recovery is not None
            assert service._recovery.recovered.wait(WAIT_S)
            assert trainer.model_id != before and service.session_id != old_session
            out = trainer.forward_backward(batch(), "cross_entropy").result(WAIT_S)
            assert out.metrics["loss:sum"] > 0

    def test_late_heartbeat_of_the_old_session_spares_the_new_one(
        self, server: LocalServer
    ) -> None:
        """A request found the loss first; when the old session's heartbeat reports it later,
        the new session is not given up."""
        clock = FakeClock(1000.0)
        with ServiceClient(
            base_url=server.url, api_key=KEY, recovery=RecoveryPolicy(), timers=TimerService(clock)
        ) as service:
            trainer = service.create_lora_training_client("tiny-byte-lm", rank=4, seed=0).result(
                WAIT_S
            )
            old_session = service.session_id
            server.expire_session(old_session)
            trainer.forward_backward(batch(), "cross_entropy").result(WAIT_S)
            assert service._recovery is not None and service._recovery.recoveries == 1
            reported = threading.Event()
            service._manager.current().tell(
                Subscribe(old_session, lambda e: isinstance(e, SessionLost) and reported.set())
            )
            clock.advance(10.0)
            assert reported.wait(WAIT_S), "the old session's heartbeat reported its loss"
            assert service.transport.health.lost is None
            assert service._recovery.recoveries == 1 and not service._recovery.running.is_set()
            trainer.optim_step(ADAM).result(WAIT_S)

    def test_samplers_get_a_new_session(self, server: LocalServer) -> None:
        """After a recovery, a sampler made before it samples from a new sampling session."""
        with ServiceClient(
            base_url=server.url, api_key=KEY, recovery=RecoveryPolicy()
        ) as service:
            trainer = service.create_lora_training_client("tiny-byte-lm", rank=4, seed=0).result(
                WAIT_S
            )
            sampler = service.create_sampling_client(base_model="tiny-byte-lm").result(WAIT_S)
            before = sampler.sampling_session_id
            server.expire_session(service.session_id)
            trainer.forward_backward(batch(), "cross_entropy").result(WAIT_S)
            prompt = types.ModelInput.from_ints([104, 105])
            params = types.SamplingParams(max_tokens=3, seed=1)
            sample = sampler.sample(prompt, 1, params).result(WAIT_S)
            assert len(sample.sequences) == 1 and sampler.sampling_session_id != before

    def test_a_sample_that_meets_the_loss_gets_its_answer(self, server: LocalServer) -> None:
        """A sampler alone: its sample meets the expired session, waits for the rebuild and is
        answered from the new sampling session, the same as before the loss (fixed seed)."""
        with ServiceClient(
            base_url=server.url, api_key=KEY, recovery=RecoveryPolicy()
        ) as service:
            sampler = service.create_sampling_client(base_model="tiny-byte-lm").result(WAIT_S)
            before = sampler.sampling_session_id
            prompt = types.ModelInput.from_ints([104, 105])
            params = types.SamplingParams(max_tokens=4, seed=7)
            first = sampler.sample(prompt, 2, params).result(WAIT_S)
            server.expire_session(service.session_id)
            again = sampler.sample(prompt, 2, params).result(WAIT_S)
            assert sampler.sampling_session_id != before
            assert [s.tokens for s in again.sequences] == [s.tokens for s in first.sequences]

    def test_without_policy_the_loss_is_an_error(self, server: LocalServer) -> None:
        """Recovery is opt-in: without a policy the handle is a plain TrainingClient."""
        with ServiceClient(base_url=server.url, api_key=KEY) as service:
            trainer = service.create_lora_training_client("tiny-byte-lm", rank=4).result(WAIT_S)
            assert not isinstance(trainer, RecoverableTrainingClient)
            server.expire_session(service.session_id)
            with pytest.raises(Exception, match=r"model not found|expired|session"):
                trainer.forward_backward(batch(), "cross_entropy").result(WAIT_S)


class TestCheckpoints:
    def test_only_the_latest_automatic_checkpoint_is_kept(self, server: LocalServer) -> None:
        """Every N steps a checkpoint is taken and the one it replaces deleted; the user's own
        checkpoints stay."""
        policy = RecoveryPolicy(checkpoint_every_steps=2)
        with ServiceClient(base_url=server.url, api_key=KEY, recovery=policy) as service:
            trainer = service.create_lora_training_client("tiny-byte-lm", rank=4, seed=0).result(
                WAIT_S
            )
            assert isinstance(trainer, RecoverableTrainingClient)
            for step in range(6):
                trainer.forward_backward(batch(), "cross_entropy").result(WAIT_S)
                trainer.optim_step(ADAM).result(WAIT_S)
                if step == 0:
                    trainer.save_state("mine").result(WAIT_S)
            trainer.forward(batch(), "cross_entropy").result(WAIT_S)  # the last save answered
            for deletion in list(trainer.pruning):
                deletion.result(WAIT_S)
            listed = service.create_rest_client().list_checkpoints(trainer.model_id).result(WAIT_S)
            names = sorted(c.checkpoint_id.rsplit("/", 1)[-1] for c in listed.checkpoints)
            assert names == ["mine", "tinkex-recovery-3-step6"], names
            assert trainer.op_log.safe_step == 6 and trainer.op_log.ops()[-1].method == "forward"


class TestRecoveryImpossible:
    def _checkpointed(self, service: ServiceClient) -> tuple[Any, str]:
        trainer = service.create_lora_training_client("tiny-byte-lm", rank=4, seed=0).result(
            WAIT_S
        )
        for _ in range(2):
            trainer.forward_backward(batch(), "cross_entropy").result(WAIT_S)
            trainer.optim_step(ADAM).result(WAIT_S)
        saved = trainer.save_state("mine").result(WAIT_S)
        assert trainer.op_log.checkpoint_path == saved.path
        return trainer, saved.path

    def test_over_budget_names_last_safe_step_and_checkpoint(self, server: LocalServer) -> None:
        """Ops past max_log_bytes since the checkpoint: the lost futures and later calls fail
        with RecoveryFailedError naming step 2 and the checkpoint to resume from."""
        policy = RecoveryPolicy(checkpoint_every_steps=100, max_log_bytes=4096)
        with ServiceClient(base_url=server.url, api_key=KEY, recovery=policy) as service:
            trainer, path = self._checkpointed(service)
            big = trainer.forward_backward(batch(16), "cross_entropy")
            big.result(WAIT_S)
            server.expire_session(service.session_id)
            step = trainer.optim_step(ADAM)
            error = step.exception(WAIT_S)
            assert isinstance(error, RecoveryFailedError)
            assert (error.last_safe_step, error.checkpoint_path) == (2, path)
            assert "max_log_bytes=4096" in str(error) and path in str(error)
            with pytest.raises(RecoveryFailedError):
                trainer.optim_step(ADAM)

    def test_checkpoint_gone(self, server: LocalServer) -> None:
        """The checkpoint was deleted: the error says it could not be loaded, and names it."""
        with ServiceClient(
            base_url=server.url, api_key=KEY, recovery=RecoveryPolicy(checkpoint_every_steps=50)
        ) as service:
            trainer, path = self._checkpointed(service)
            service.create_rest_client().delete_checkpoint_from_tinker_path(path).result(WAIT_S)
            server.expire_session(service.session_id)
            error = trainer.forward_backward(batch(), "cross_entropy").exception(WAIT_S)
            assert isinstance(error, RecoveryFailedError)
            assert error.checkpoint_path == path and "could not be loaded" in str(error)


class TestServerGone:
    def test_attempts_used_up_fail_every_future(self) -> None:
        """The server never comes back: after max_attempts rebuilds every future fails with
        RecoveryFailedError, within the attempts' connection_lost_after_s and backoff."""
        server = LocalServer(api_key=KEY).start()
        policy = RecoveryPolicy(max_attempts=2)
        with ServiceClient(
            base_url=server.url, api_key=KEY, recovery=policy, connection_lost_after_s=0.5
        ) as service:
            trainer = service.create_lora_training_client("tiny-byte-lm", rank=4).result(WAIT_S)
            trainer.forward_backward(batch(), "cross_entropy").result(WAIT_S)
            server.stop()
            started = time.monotonic()
            pending = [trainer.forward_backward(batch(), "cross_entropy"), trainer.optim_step(ADAM)]
            errors = [f.exception(WAIT_S) for f in pending]
            took = time.monotonic() - started
        assert all(isinstance(e, RecoveryFailedError) for e in errors), errors
        assert "max_attempts" in str(errors[0]) and errors[0].last_safe_step == 0
        assert took < 0.5 * 3 + 1 + 5, took

    def test_close_during_recovery_is_bounded(self) -> None:
        """close() while a rebuild waits for a dead server returns within 2 s; every future
        ends with ClientClosedError and no thread is left."""
        server = LocalServer(api_key=KEY).start()
        service = ServiceClient(
            base_url=server.url, api_key=KEY, recovery=RecoveryPolicy(), connection_lost_after_s=0.5
        )
        trainer = service.create_lora_training_client("tiny-byte-lm", rank=4).result(WAIT_S)
        trainer.forward_backward(batch(), "cross_entropy").result(WAIT_S)
        server.stop()
        pending = trainer.forward_backward(batch(), "cross_entropy")
        assert service._recovery is not None
        assert service._recovery.running.wait(WAIT_S), "no recovery started"
        started = time.monotonic()
        service.close()
        assert time.monotonic() - started < 2.5
        assert isinstance(pending.exception(WAIT_S), ClientClosedError)
