"""ServiceClient and TrainingClient against the embedded server over real HTTP."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import numpy as np
import pytest

from supervisors import kill
from tinkex_actors import types
from tinkex_actors.clients.training_sequencer import chunk_data
from tinkex_actors.config import ClientFlags
from tinkex_actors.local import LocalServer, ServerSettings
from tinkex_actors.service.service_client import ServiceClient

WAIT_S = 60.0
TEXT = list(b"hello -> ellohay\n")


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(settings=ServerSettings(long_poll_timeout_s=1.0),
                     api_key="tml-training-tests") as srv:
        yield srv


@pytest.fixture
def service(server: LocalServer) -> Iterator[ServiceClient]:
    with ServiceClient(base_url=server.url, api_key="tml-training-tests") as sc:
        yield sc


def datum(tokens: list[int] = TEXT) -> types.Datum:
    n = len(tokens) - 1
    return types.Datum(
        model_input=types.ModelInput.from_ints(tokens[:-1]),
        loss_fn_inputs={
            "target_tokens": types.TensorData.from_numpy(np.array(tokens[1:], dtype=np.int64)),
            "weights": types.TensorData.from_numpy(np.ones(n, dtype=np.float32)),
        },
    )


ADAM = types.AdamParams(learning_rate=1e-2)


def applied_seq_ids(server: LocalServer, model_id: str) -> list[int]:
    worker = server.service.models[model_id].worker
    return sorted(worker._applied)


class TestTraining:
    def test_pipelined_steps_train_and_the_loss_falls(self, service: ServiceClient) -> None:
        """forward_backward and optim_step submitted back to back: loss falls."""
        tc = service.create_lora_training_client("tiny-byte-lm", rank=8, seed=1).result(WAIT_S)
        steps = [
            (tc.forward_backward([datum()], "cross_entropy"), tc.optim_step(ADAM)) for _ in range(6)
        ]
        losses = [fb.result(WAIT_S).metrics["loss:sum"] for fb, _ in steps]
        assert all(opt.result(WAIT_S).metrics for _, opt in steps)
        assert losses[-1] < losses[0] / 2

    def test_calls_from_8_threads_keep_issue_order_per_thread_and_leave_no_gap(
        self, server: LocalServer, service: ServiceClient
    ) -> None:
        """200 calls from 8 threads: seq_ids 1..200 applied once each, in order per thread."""
        tc = service.create_lora_training_client("tiny-byte-lm", rank=4, seed=2).result(WAIT_S)
        per_thread: dict[int, list[types.Datum]] = {}
        futures: dict[int, list[object]] = {i: [] for i in range(8)}
        start = threading.Barrier(8)

        def run(i: int) -> None:
            start.wait(WAIT_S)
            for _ in range(25):
                futures[i].append(tc.forward([datum()], "cross_entropy"))

        threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT_S)
        del per_thread
        for fs in futures.values():
            for f in fs:
                f.result(WAIT_S)  # type: ignore[attr-defined]
        assert applied_seq_ids(server, tc.model_id) == list(range(1, 201))
        seq_of = {
            rid: seq for seq, rid in server.service.models[tc.model_id].worker._applied.items()
        }
        for fs in futures.values():
            seqs = [seq_of[f.request_id] for f in fs]  # type: ignore[attr-defined]
            assert seqs == sorted(seqs)

    def test_a_batch_over_1024_datums_goes_in_two_chunks_and_comes_back_whole(
        self, server: LocalServer, service: ServiceClient
    ) -> None:
        """1025 datums: two forward_backward requests, 1025 outputs, metrics reduced."""
        tc = service.create_lora_training_client("tiny-byte-lm", rank=4, seed=3).result(WAIT_S)
        before = server.app.path_counts["/api/v1/forward_backward"]
        small = datum(TEXT[:4])
        out = tc.forward([small] * 1025, "cross_entropy").result(WAIT_S)
        assert server.app.path_counts["/api/v1/forward_backward"] - before == 2
        assert len(out.loss_fn_outputs) == 1025
        single = tc.forward([small], "cross_entropy").result(WAIT_S)
        assert out.metrics["loss:sum"] == pytest.approx(1025 * single.metrics["loss:sum"], rel=1e-4)

    def test_chunking_never_makes_an_empty_chunk(self) -> None:
        """An oversized first datum gets a chunk of its own, not an empty one before it."""
        flags = ClientFlags(fwdbwd_max_chunk_bytes_count=70, fwdbwd_max_chunk_len=1024)
        big, small = datum(list(range(40))), datum(TEXT[:3])
        chunks = chunk_data([big, small, small], flags)
        assert [len(c) for c in chunks] == [1, 2]
        assert all(chunks)


class TestCheckpoints:
    def test_save_then_restore_with_optimizer_continues_identically(
        self, service: ServiceClient
    ) -> None:
        """Steps after save_state match the steps of a client restored from it."""
        tc = service.create_lora_training_client("tiny-byte-lm", rank=8, seed=4).result(WAIT_S)
        for _ in range(3):
            tc.forward_backward([datum()], "cross_entropy")
            tc.optim_step(ADAM)
        path = tc.save_state("mid").result(WAIT_S).path
        assert path.endswith("/weights/mid")

        def two_steps(client: object) -> list[float]:
            out = []
            for _ in range(2):
                out.append(client.forward_backward([datum()], "cross_entropy"))  # type: ignore[attr-defined]
                client.optim_step(ADAM).result(WAIT_S)  # type: ignore[attr-defined]
            return [f.result(WAIT_S).metrics["loss:sum"] for f in out]

        original = two_steps(tc)
        restored = service.create_training_client_from_state_with_optimizer(path).result(WAIT_S)
        assert restored.model_id != tc.model_id
        assert two_steps(restored) == original

    def test_load_state_into_the_same_model_resets_its_weights(
        self, service: ServiceClient
    ) -> None:
        """load_state brings back the saved weights."""
        tc = service.create_lora_training_client("tiny-byte-lm", rank=8, seed=5).result(WAIT_S)
        path = tc.save_state("start").result(WAIT_S).path
        first = tc.forward([datum()], "cross_entropy").result(WAIT_S).metrics["loss:sum"]
        tc.forward_backward([datum()], "cross_entropy")
        tc.optim_step(ADAM)
        tc.load_state(path).result(WAIT_S)
        again = tc.forward([datum()], "cross_entropy").result(WAIT_S).metrics["loss:sum"]
        assert again == pytest.approx(first, rel=1e-6)


class TestFaults:
    def test_killing_the_actor_mid_run_loses_no_step_and_duplicates_none(
        self, server: LocalServer, service: ServiceClient
    ) -> None:
        """A killed TrainingClient actor is restarted; every step is applied exactly once."""
        reference = service.create_lora_training_client("tiny-byte-lm", rank=4, seed=6)
        ref_losses = []
        for _ in range(8):
            ref_losses.append(reference.forward_backward([datum()], "cross_entropy"))
            reference.optim_step(ADAM)
        expected = [f.result(WAIT_S).metrics["loss:sum"] for f in ref_losses]

        tc = service.create_lora_training_client("tiny-byte-lm", rank=4, seed=6).result(WAIT_S)
        server.faults.delay("/api/v1/forward_backward", 0.05, times=8)
        losses = []
        steps = []
        for _ in range(8):
            losses.append(tc.forward_backward([datum()], "cross_entropy"))
            steps.append(tc.optim_step(ADAM))
        victim = service.registry.whereis(("training", tc.model_id))
        assert victim is not None
        kill(victim)
        assert [f.result(WAIT_S).metrics["loss:sum"] for f in losses] == expected
        for step in steps:  # the last optim_step may still be on its way after the last loss
            step.result(WAIT_S)
        assert applied_seq_ids(server, tc.model_id) == list(range(1, 17))

    def test_validation_errors_send_no_request(
        self, server: LocalServer, service: ServiceClient
    ) -> None:
        """Bad arguments raise before anything goes on the wire."""
        tc = service.create_lora_training_client("tiny-byte-lm", rank=4, seed=7).result(WAIT_S)
        before = server.app.request_count
        with pytest.raises(ValueError, match="loss_fn"):
            tc.forward_backward([datum()], "hinge")
        with pytest.raises(ValueError, match="empty"):
            tc.forward_backward([], "cross_entropy")
        with pytest.raises(TypeError, match="AdamParams"):
            tc.optim_step({"learning_rate": 1e-3})  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="tinker path"):
            tc.load_state("s3://bucket/ckpt")
        with pytest.raises(ValueError, match="train nothing"):
            service.create_lora_training_client(
                "tiny-byte-lm", train_mlp=False, train_attn=False, train_unembed=False
            )
        with pytest.raises(ValueError):
            types.AdamParams(learning_rate=-1.0)
        assert server.app.request_count == before


class TestCreationForms:
    def test_a_creation_future_is_usable_as_the_client_result_or_awaited(
        self, service: ServiceClient
    ) -> None:
        """Old direct use, official 0.38 `.result()`, and `await` all work."""
        direct = service.create_lora_training_client("tiny-byte-lm", rank=4, seed=8)
        assert direct.model_id.endswith(":train:" + direct.model_id.rsplit(":", 1)[1])
        resolved = service.create_lora_training_client("tiny-byte-lm", rank=4).result(WAIT_S)
        assert resolved.get_info().lora_rank == 4  # a value, as officially

        async def make() -> str:
            client = await service.create_lora_training_client_async("tiny-byte-lm", rank=4)
            return client.model_id

        assert asyncio.run(make()).startswith(service.session_id)

    def test_the_byte_tokenizer_comes_offline(self, service: ServiceClient) -> None:
        """get_tokenizer gives the embedded models' byte tokenizer with no download."""
        tc = service.create_lora_training_client("tiny-byte-lm", rank=4).result(WAIT_S)
        tok = tc.get_tokenizer()
        assert tok.decode(tok.encode("hé", add_special_tokens=False)) == "hé"


class TestSampling:
    def test_sampling_after_training_shows_what_was_learned(self, service: ServiceClient) -> None:
        """save_weights_and_get_sampling_client samples the trained completion greedily."""
        tc = service.create_lora_training_client("tiny-byte-lm", rank=16, seed=9).result(WAIT_S)
        for _ in range(25):
            tc.forward_backward([datum()], "cross_entropy")
            tc.optim_step(types.AdamParams(learning_rate=2e-2))
        sampler = tc.save_weights_and_get_sampling_client().result(WAIT_S)
        out = sampler.sample(
            types.ModelInput.from_ints(TEXT[:9]),
            1,
            types.SamplingParams(max_tokens=8, temperature=0.0),
        ).result(WAIT_S)
        assert bytes(out.sequences[0].tokens[:7]) == b"ellohay"
        lps = sampler.compute_logprobs(types.ModelInput.from_ints(TEXT)).result(WAIT_S)
        assert lps[0] is None and len(lps) == len(TEXT)


class TestLifecycle:
    def test_close_finishes_the_session_and_leaves_no_thread(self, server: LocalServer) -> None:
        """Closing ends the session on the server and stops every thread it started."""
        before = set(threading.enumerate())
        sc = ServiceClient(base_url=server.url, api_key="tml-training-tests")
        sc.create_lora_training_client("tiny-byte-lm", rank=4).result(WAIT_S)
        sc.close()
        assert server.service.ended[sc.session_id] == "success"
        for t in set(threading.enumerate()) - before:
            t.join(WAIT_S)
            assert not t.is_alive(), t.name


class TestCustomLoss:
    def test_a_numpy_custom_loss_trains_like_the_same_builtin_loss(
        self, service: ServiceClient
    ) -> None:
        """-sum(logprobs) by forward_backward_custom equals cross_entropy with weights 1."""

        def neg_sum(data: list[types.Datum], logprobs: list[np.ndarray]):  # type: ignore[no-untyped-def]
            loss = -sum(float(lp.sum()) for lp in logprobs)
            return loss, {"custom:sum": loss}, [-np.ones_like(lp) for lp in logprobs]

        custom = service.create_lora_training_client("tiny-byte-lm", rank=4, seed=11).result(WAIT_S)
        builtin = service.create_lora_training_client("tiny-byte-lm", rank=4, seed=11).result(
            WAIT_S
        )
        out = custom.forward_backward_custom([datum()], neg_sum).result(WAIT_S)
        ref = builtin.forward_backward([datum()], "cross_entropy").result(WAIT_S)
        assert out.metrics["custom:sum"] == pytest.approx(ref.metrics["loss:sum"], rel=1e-5)
        custom.optim_step(ADAM).result(WAIT_S)
        builtin.optim_step(ADAM).result(WAIT_S)
        after_custom = custom.forward([datum()], "cross_entropy").result(WAIT_S)
        after_builtin = builtin.forward([datum()], "cross_entropy").result(WAIT_S)
        assert after_custom.metrics["loss:sum"] == pytest.approx(
            after_builtin.metrics["loss:sum"], rel=1e-5
        )

    def test_a_custom_loss_with_wrong_gradients_fails_its_future(
        self, service: ServiceClient
    ) -> None:
        """A gradient of the wrong shape is an error naming the fix."""
        tc = service.create_lora_training_client("tiny-byte-lm", rank=4).result(WAIT_S)

        def bad(data: list[types.Datum], logprobs: list[np.ndarray]):  # type: ignore[no-untyped-def]
            return 0.0, {}, [np.ones(3)]

        with pytest.raises(ValueError, match="shape"):
            tc.forward_backward_custom([datum()], bad).result(WAIT_S)


class TestSaveConflicts:
    def test_a_save_answered_409_counts_as_landed(self, server: LocalServer) -> None:
        """The name exists (an earlier attempt landed): save_state succeeds with its path."""
        with ServiceClient(base_url=server.url, api_key="tml-training-tests", max_retries=0) as sc:
            tc = sc.create_lora_training_client("tiny-byte-lm", rank=4).result(WAIT_S)
            server.faults.inject_status("/api/v1/save_weights", 409)
            saved = tc.save_state("twice").result(WAIT_S)
            assert saved.path == f"tinker://{tc.model_id}/weights/twice"
            server.faults.inject_status("/api/v1/optim_step", 409)
            with pytest.raises(Exception, match="409"):
                tc.optim_step(ADAM).result(WAIT_S)
            server.faults.clear()


class TestSessionLoss:
    def test_an_expired_session_fails_queued_work_and_refuses_new_calls(
        self, server: LocalServer
    ) -> None:
        """After a heartbeat learns the session is gone, calls raise SessionExpiredError."""
        from supervisors.testing import FakeClock
        from supervisors.timers import TimerService
        from tinkex_actors.errors import SessionExpiredError

        clock = FakeClock()
        with ServiceClient(
            base_url=server.url, api_key="tml-training-tests", timers=TimerService(clock)
        ) as sc:
            tc = sc.create_lora_training_client("tiny-byte-lm", rank=4).result(WAIT_S)
            server.expire_session(sc.session_id)
            clock.advance(10.0)
            assert tc._state.lost_event.wait(WAIT_S)
            with pytest.raises(SessionExpiredError, match="open a new session"):
                tc.forward([datum()], "cross_entropy")


class TestAsyncTwins:
    def test_awaiting_an_async_twin_gives_a_future_to_await(self, service: ServiceClient) -> None:
        """`await tc.forward_backward_async(...)` then `await` the Future, as officially."""
        tc = service.create_lora_training_client("tiny-byte-lm", rank=4).result(WAIT_S)

        async def run() -> tuple[float, object]:
            fb = await tc.forward_backward_async([datum()], "cross_entropy")
            opt = await tc.optim_step_async(ADAM)
            out = await fb
            info = await tc.get_info_async()
            await opt
            return out.metrics["loss:sum"], info

        loss, info = asyncio.run(run())
        assert loss > 0 and info.model_id == tc.model_id  # type: ignore[attr-defined]


class TestEmbedding:
    def test_a_service_client_runs_under_the_users_own_supervisor(
        self, server: LocalServer
    ) -> None:
        """child_spec starts the tree as a child; stopping the parent finishes the session."""
        from supervisors import Supervisor, stop

        spec = ServiceClient.child_spec("tinker", base_url=server.url,
                                        api_key="tml-training-tests")
        parent = Supervisor.start([spec])
        try:
            client = ServiceClient.instances["tinker"]
            tc = client.create_lora_training_client("tiny-byte-lm", rank=4).result(WAIT_S)
            assert tc.forward([datum()], "cross_entropy").result(WAIT_S).metrics
        finally:
            stop(parent, timeout_s=WAIT_S)
        assert server.service.ended[client.session_id] == "success"
        assert not client.transport.is_running

    def test_reconnect_opens_a_new_session_for_new_clients(
        self, server: LocalServer, service: ServiceClient
    ) -> None:
        """After reconnect, new clients live in the new session."""
        old = service.session_id
        new = service.reconnect()
        assert new != old and service.session_id == new
        tc = service.create_lora_training_client("tiny-byte-lm", rank=4).result(WAIT_S)
        assert tc.model_id.startswith(new)


class TestOtherServers:
    def test_a_server_refusing_protobuf_gets_json_from_then_on(
        self, server: LocalServer, service: ServiceClient
    ) -> None:
        """A 415 on a protobuf forward_backward resends it as JSON, same seq_id, and sticks."""
        tc = service.create_lora_training_client("tiny-byte-lm", rank=4, seed=12).result(WAIT_S)
        server.faults.inject_status("/api/v1/forward_backward", 415)
        out = tc.forward_backward([datum()], "cross_entropy").result(WAIT_S)
        assert out.metrics["loss:sum"] > 0
        before = server.app.path_counts["/api/v1/forward"]
        assert tc.forward([datum()], "cross_entropy").result(WAIT_S).metrics
        assert server.app.path_counts["/api/v1/forward"] == before + 1
        assert applied_seq_ids(server, tc.model_id) == [1, 2]

    def test_a_model_created_inline_needs_no_poll(
        self, server: LocalServer, service: ServiceClient
    ) -> None:
        """create_model answered with {model_id} directly is taken as it is."""
        server.faults.inject_status("/api/v1/create_model", 200,
                                    body={"model_id": "inline-model"})
        tc = service.create_lora_training_client("tiny-byte-lm", rank=4).result(WAIT_S)
        assert tc.model_id == "inline-model"
