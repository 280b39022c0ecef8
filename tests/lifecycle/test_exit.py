"""Exit and close: a program never hangs on the client, whatever the server does."""

from __future__ import annotations

import time

import httpx
import numpy as np
import pytest

import tinkex_actors as tx
from supervisors import terminate_child
from tests.lifecycle.conftest import KEY, NOISE, Script, ServerProcess
from tinkex_actors import types
from tinkex_actors.errors import ClientClosedError, TransportClosedError
from tinkex_actors.local import LocalServer

EXIT_WITHIN_S = 2.0
WAIT_S = 30.0

# A user script in the style of the official SDK's recipes: no close(), futures left pending.
PRELUDE = """
import atexit, sys, time
import numpy as np
import tinkex_actors as tx
from tinkex_actors import types

url, mode, key = sys.argv[1], sys.argv[2], sys.argv[3]
datum = types.Datum(
    model_input=types.ModelInput.from_ints([1, 2, 3, 4]),
    loss_fn_inputs={"target_tokens": types.TensorData.from_numpy(np.array([2, 3, 4, 5]))},
)
outcomes = []
def report():  # plain atexit: runs after the client's own exit hook
    print("OUTCOMES", len(outcomes), " ".join(sorted(set(outcomes))) or "-", flush=True)
atexit.register(report)
def note(future):
    error = future.exception()
    outcomes.append("ok" if error is None else type(error).__name__)
"""

NO_CLOSE = PRELUDE + """
service = tx.ServiceClient(base_url=url, api_key=key)
trainer = service.create_lora_training_client("tiny-byte-lm", rank=4).result(30)
trainer.forward_backward([datum], "cross_entropy").result(30)
print("SESSION", service.session_id, flush=True)
pending = [trainer.forward_backward([datum], "cross_entropy") for _ in range(20)]
pending.append(trainer.optim_step(types.AdamParams(learning_rate=1e-3)))
for future in pending:
    future.add_done_callback(note)
print("READY", flush=True)
sys.stdin.readline()
print("END", time.time(), flush=True)
"""


def datum() -> types.Datum:
    """A one-sequence batch for the byte model."""
    return types.Datum(
        model_input=types.ModelInput.from_ints([1, 2, 3, 4]),
        loss_fn_inputs={"target_tokens": types.TensorData.from_numpy(np.array([2, 3, 4, 5]))},
    )


def assert_clean(output: str) -> None:
    """No traceback of ours, no loop noise."""
    for noise in NOISE:
        assert noise not in output, f"{noise!r} printed:\n{output[-3000:]}"


class TestExitWithoutClose:
    def test_a_script_without_close_exits_within_2_s_against_a_live_server(
        self, script: Script, server_process: ServerProcess
    ) -> None:
        """Main thread ends with 21 futures pending: exit < 2 s, all settled, session finished."""
        run = script.run(NO_CLOSE, server_process.url, "live", KEY)
        assert run.returncode == 0, run.output
        assert run.exit_after_s < EXIT_WITHIN_S, run.output
        assert_clean(run.output)
        [outcomes] = run.lines("OUTCOMES")
        _, count, kinds = outcomes.split(" ", 2)
        assert count == "21"
        assert set(kinds.split()) <= {"ok", "ClientClosedError"}, outcomes
        [session] = run.lines("SESSION")
        beat = httpx.post(
            f"{server_process.url}/api/v1/session_heartbeat",
            json={"session_id": session.split()[1]},
            headers={"X-API-Key": KEY},
        )
        assert beat.status_code == 410 and "finished" in beat.text

    def test_a_script_without_close_exits_within_2_s_once_its_server_has_gone(
        self, script: Script, server_process: ServerProcess
    ) -> None:
        """The server is SIGKILLed before the end: exit < 2 s, futures settled, no traceback."""
        run = script.run(
            NO_CLOSE, server_process.url, "gone", KEY, on_ready=lambda _p: server_process.kill()
        )
        assert run.returncode == 0, run.output
        assert run.exit_after_s < EXIT_WITHIN_S, run.output
        assert_clean(run.output)
        [outcomes] = run.lines("OUTCOMES")
        _, count, kinds = outcomes.split(" ", 2)
        assert count == "21"
        assert "ClientClosedError" in kinds.split(), outcomes
        assert set(kinds.split()) <= {"ok", "ClientClosedError"}, outcomes


THREE_CLIENTS = PRELUDE + """
clients = [tx.ServiceClient(base_url=url, api_key=key) for _ in range(3)]
for client in clients:
    trainer = client.create_lora_training_client("tiny-byte-lm", rank=4).result(30)
    trainer.forward_backward([datum], "cross_entropy").add_done_callback(note)
print("READY", flush=True)
sys.stdin.readline()
print("END", time.time(), flush=True)
"""


class TestExitWithSeveralClients:
    def test_three_clients_without_close_exit_within_2_s_once_their_server_has_gone(
        self, script: Script, server_process: ServerProcess
    ) -> None:
        """Three ServiceClients left open are closed side by side at exit: one budget, < 2 s."""
        gone = server_process.kill
        run = script.run(THREE_CLIENTS, server_process.url, "gone", KEY, on_ready=lambda _p: gone())
        assert run.returncode == 0, run.output
        assert run.exit_after_s < EXIT_WITHIN_S, run.output
        assert_clean(run.output)
        [outcomes] = run.lines("OUTCOMES")
        assert outcomes.split(" ", 2)[1] == "3"


class TestClose:
    def test_close_with_the_server_gone_is_bounded_and_fails_every_future_typed(
        self, server_process: ServerProcess
    ) -> None:
        """close() after SIGKILL of the server: < 2 s, every future ends in ClientClosedError."""
        service = tx.ServiceClient(base_url=server_process.url, api_key=KEY)
        trainer = service.create_lora_training_client("tiny-byte-lm", rank=4).result(WAIT_S)
        trainer.forward_backward([datum()], "cross_entropy").result(WAIT_S)
        server_process.kill()
        pending = [trainer.forward_backward([datum()], "cross_entropy") for _ in range(10)]
        started = time.monotonic()
        service.close()
        took = time.monotonic() - started
        assert took < EXIT_WITHIN_S
        for future in pending:
            assert isinstance(future.exception(0), ClientClosedError)

    def test_a_call_after_close_raises_client_closed_error_at_once(
        self, server_process: ServerProcess
    ) -> None:
        """Training, sampling and service calls after close raise ClientClosedError, no wait."""
        service = tx.ServiceClient(base_url=server_process.url, api_key=KEY)
        trainer = service.create_lora_training_client("tiny-byte-lm", rank=4).result(WAIT_S)
        sampler = service.create_sampling_client(base_model="tiny-byte-lm").result(WAIT_S)
        service.close()
        started = time.monotonic()
        with pytest.raises(ClientClosedError):
            trainer.forward_backward([datum()], "cross_entropy")
        with pytest.raises(ClientClosedError):
            trainer.optim_step(types.AdamParams(learning_rate=1e-3))
        with pytest.raises(ClientClosedError):
            sampler.sample(types.ModelInput.from_ints([1]), 1, types.SamplingParams(max_tokens=2))
        with pytest.raises(ClientClosedError):
            service.create_lora_training_client("tiny-byte-lm", rank=4)
        with pytest.raises(TransportClosedError):  # ClientClosedError is one
            trainer.get_info().result(WAIT_S)
        assert time.monotonic() - started < 1.0

    def test_leaving_with_keeps_the_users_exception_when_the_server_is_gone(
        self, server_process: ServerProcess
    ) -> None:
        """An exception inside `with` comes out as is (no CancelledError), within 2 s."""
        pending: list[tx.Future[types.ForwardBackwardOutput]] = []
        started = 0.0
        with (
            pytest.raises(KeyError, match="the user's own"),
            tx.ServiceClient(base_url=server_process.url, api_key=KEY) as service,
        ):
            trainer = service.create_lora_training_client("tiny-byte-lm", rank=4).result(WAIT_S)
            server_process.kill()
            pending.extend(trainer.forward_backward([datum()], "cross_entropy") for _ in range(5))
            started = time.monotonic()
            raise KeyError("the user's own")
        assert time.monotonic() - started < EXIT_WITHIN_S
        assert all(isinstance(f.exception(0), ClientClosedError) for f in pending)


class TestActorStop:
    def test_a_training_actor_stopped_by_its_supervisor_fails_its_queued_futures(
        self, server: LocalServer
    ) -> None:
        """terminate_child with steps queued (the first held 2 s by the server): every one
        of them ends in ClientClosedError, none is left pending."""
        with tx.ServiceClient(base_url=server.url, api_key=KEY) as service:
            trainer = service.create_lora_training_client("tiny-byte-lm", rank=4).result(WAIT_S)
            server.faults.delay("/api/v1/forward_backward", 2.0)
            queued = [trainer.forward_backward([datum()], "cross_entropy") for _ in range(5)]
            supervisor = service.registry.whereis("training_clients")
            actor = service.registry.whereis(("training", trainer.model_id))
            assert supervisor is not None and actor is not None
            terminate_child(supervisor, actor)
            for future in queued:
                assert isinstance(future.exception(WAIT_S), ClientClosedError)
            with pytest.raises(ClientClosedError):
                trainer.optim_step(types.AdamParams(learning_rate=1e-3))


CTRL_C = PRELUDE + """
import os, signal
service = tx.ServiceClient(base_url=url, api_key=key)
trainer = service.create_lora_training_client("tiny-byte-lm", rank=4).result(30)
try:
    step = 0
    while True:  # a training loop; Ctrl-C arrives at its third step
        step += 1
        for _ in range(5):
            trainer.forward_backward([datum], "cross_entropy").add_done_callback(note)
        if step == 3:
            os.kill(os.getpid(), signal.SIGINT)
        trainer.optim_step(types.AdamParams(learning_rate=1e-3)).result(30)
except KeyboardInterrupt:
    print("END", time.time(), flush=True)
    raise
"""


class TestCtrlC:
    def test_ctrl_c_during_a_run_exits_cleanly(
        self, script: Script, server_process: ServerProcess
    ) -> None:
        """SIGINT mid-loop: the KeyboardInterrupt ends the program within 2 s, no other noise."""
        run = script.run(CTRL_C, server_process.url, "ctrl-c", KEY)
        assert run.exit_after_s < EXIT_WITHIN_S, run.output
        assert run.returncode != 0
        tail = run.output.split("END ", 1)[1]
        assert "KeyboardInterrupt" in tail
        for noise in ("Exception in thread", "Event loop is closed", "CancelledError"):
            assert noise not in run.output, run.output[-3000:]
        [outcomes] = run.lines("OUTCOMES")
        assert set(outcomes.split(" ", 2)[2].split()) <= {"ok", "ClientClosedError"}, outcomes
