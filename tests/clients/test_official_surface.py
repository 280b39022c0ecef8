"""The official 0.38 client surface against the embedded server: return types, parameters,
new methods and the wire details official clients show (recorded as the server got them)."""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any

import numpy as np
import pytest
import structlog

from tests.clients._live import BASE, KEY, WAIT_S
from tests.clients._recorder import recording
from tinkex_actors import types
from tinkex_actors.clients.extras import LossHandle
from tinkex_actors.clients.sampling import SamplingClient
from tinkex_actors.clients.training import TrainingClient
from tinkex_actors.errors import BadRequestError, NotFoundError
from tinkex_actors.futures.queue_state import QueueState
from tinkex_actors.local import LocalServer
from tinkex_actors.rest.rest_client import RestClient
from tinkex_actors.service.service_client import ServiceClient
from tinkex_actors.transport.retry import RetryPolicy

TEXT = list(b"hi -> ih\n")
PROMPT = types.ModelInput.from_ints(list(b"hi -> "))
GREEDY = types.SamplingParams(max_tokens=4, temperature=0.0, seed=1)




def datum() -> types.Datum:
    return types.Datum(
        model_input=types.ModelInput.from_ints(TEXT[:-1]),
        loss_fn_inputs={
            "target_tokens": types.TensorData.from_numpy(np.array(TEXT[1:], dtype=np.int64)),
            "weights": types.TensorData.from_numpy(np.ones(len(TEXT) - 1, dtype=np.float32)),
        },
    )


def rest_for(server: LocalServer) -> RestClient:
    return RestClient(base_url=server.url, api_key=KEY)


class TestReturnTypes:
    def test_save_weights_and_get_sampling_client_is_usable_as_the_sampler(
        self, trainer: TrainingClient
    ) -> None:
        """`.sample(...)` straight on the returned future works, as do `.result()` and await."""
        pending = trainer.save_weights_and_get_sampling_client()
        direct = pending.sample(PROMPT, 1, GREEDY).result(WAIT_S)
        assert len(direct.sequences[0].tokens) == 4
        sampler = pending.result(WAIT_S)
        assert isinstance(sampler, SamplingClient)

        async def awaited() -> SamplingClient:
            client: SamplingClient = await trainer.save_weights_and_get_sampling_client()
            return client

        assert isinstance(asyncio.run(awaited()), SamplingClient)

    def test_awaiting_sample_async_and_compute_logprobs_async_gives_values(
        self, service: ServiceClient
    ) -> None:
        """`await sample_async` is the SampleResponse; `await compute_logprobs_async` the list."""
        sampler = service.create_sampling_client(base_model=BASE).result(WAIT_S)

        async def run() -> tuple[object, object]:
            response = await sampler.sample_async(PROMPT, 2, GREEDY)
            logprobs = await sampler.compute_logprobs_async(PROMPT)
            return response, logprobs

        response, logprobs = asyncio.run(run())
        assert isinstance(response, types.SampleResponse) and len(response.sequences) == 2
        assert isinstance(logprobs, list) and logprobs[0] is None
        assert len(logprobs) == PROMPT.length and all(isinstance(x, float) for x in logprobs[1:])

    def test_capabilities_and_info_are_values_and_info_is_asked_once(
        self, server: LocalServer, service: ServiceClient, trainer: TrainingClient
    ) -> None:
        """get_server_capabilities() and get_info() give values; get_info asks the server once."""
        caps = service.get_server_capabilities()
        assert BASE in [m.model_name for m in caps.supported_models]
        with recording(server) as seen:
            first = trainer.get_info()
            again = asyncio.run(trainer.get_info_async())
        assert isinstance(first, types.GetInfoResponse) and first.lora_rank == 4
        assert again is first
        assert len(seen.to("get_info")) == 1

    def test_attributes_read_off_a_creation_future_come_from_the_client(
        self, service: ServiceClient
    ) -> None:
        """Reading `.sampling_session_id` or `.get_base_model()` off the future waits for it."""
        pending = service.create_sampling_client(base_model=BASE)
        assert pending.sampling_session_id.startswith(service.session_id)
        assert pending.get_base_model() == BASE


class TestEphemeralSampler:
    def test_no_name_saves_ephemerally_and_the_sampler_uses_the_answered_session(
        self, server: LocalServer, trainer: TrainingClient
    ) -> None:
        """No path, a fresh sampling_session_seq_id, no create_sampling_session, no checkpoint."""
        with recording(server) as seen:
            first = trainer.save_weights_and_get_sampling_client().result(WAIT_S)
            second = trainer.save_weights_and_get_sampling_client().result(WAIT_S)
            first.sample(PROMPT, 1, GREEDY).result(WAIT_S)
        saves = [s.body for s in seen.to("save_weights_for_sampler")]
        assert [("path" in b, b["kind"]) for b in saves] == [(False, "snapshot")] * 2
        seqs = [b["sampling_session_seq_id"] for b in saves]
        assert len(set(seqs)) == 2
        assert seen.to("create_sampling_session") == []
        assert {first.sampling_session_id, second.sampling_session_id} == {
            f"{trainer._state.session_id}:sample:{n}" for n in seqs
        }
        assert server.service.storage.list_checkpoints(trainer.model_id) == []
        assert first.get_base_model() == BASE

    def test_a_name_still_keeps_a_sampler_checkpoint(
        self, server: LocalServer, trainer: TrainingClient
    ) -> None:
        """With a name (older SDKs' form) the weights persist under sampler_weights/<name>."""
        sampler = trainer.save_weights_and_get_sampling_client("kept").result(WAIT_S)
        assert sampler.model_path == f"tinker://{trainer.model_id}/sampler_weights/kept"
        stored = server.service.storage.list_checkpoints(trainer.model_id)
        assert [c["checkpoint_id"] for c in stored] == ["sampler_weights/kept"]

    def test_a_bad_kind_is_refused_before_anything_is_sent(self, trainer: TrainingClient) -> None:
        """kind must be snapshot or inflight."""
        with pytest.raises(ValueError, match="inflight"):
            trainer.save_weights_and_get_sampling_client(kind="live")  # type: ignore[arg-type]


class TestWire:
    def test_the_first_sample_of_a_session_carries_seq_id_0(
        self, server: LocalServer, service: ServiceClient
    ) -> None:
        """seq_ids of a sampling session count 0, 1, 2 as the official SDK's."""
        sampler = service.create_sampling_client(base_model=BASE).result(WAIT_S)
        with recording(server) as seen:
            for _ in range(3):
                sampler.sample(PROMPT, 1, GREEDY).result(WAIT_S)
        assert [s.body["seq_id"] for s in seen.to("asample")] == [0, 1, 2]

    def test_create_session_sends_empty_metadata_and_the_official_constructor_args(
        self, server: LocalServer
    ) -> None:
        """user_metadata is {} when not given, never null; project_id and display_name go too."""
        with recording(server) as seen:
            with ServiceClient(base_url=server.url, api_key=KEY):
                pass
            with ServiceClient(
                {"team": "a"}, "proj-x", display_name="nightly run", base_url=server.url,
                api_key=KEY, default_headers_overrides={"x-team": "blue"},
            ):
                pass
        plain, named = (s.body for s in seen.to("create_session"))
        assert seen.to("create_session")[1].headers["x-team"] == "blue"
        assert plain["user_metadata"] == {} and "project_id" not in plain
        assert named["user_metadata"] == {"team": "a"}
        assert (named["project_id"], named["display_name"]) == ("proj-x", "nightly run")

    def test_a_4xx_on_a_training_call_sends_a_user_error_event(self, server: LocalServer) -> None:
        """load_state of a missing checkpoint fails with 404 and reports `user_error`."""
        with ServiceClient(base_url=server.url, api_key=KEY, telemetry_enabled=True) as sc:
            tc = sc.create_lora_training_client(BASE, rank=4).result(WAIT_S)
            missing = f"tinker://{tc.model_id}/weights/never-saved"
            with pytest.raises(NotFoundError):
                tc.load_state(missing).result(WAIT_S)
            session_id = sc.session_id
        events = [
            e for e in server.service.telemetry_events
            if e.get("event_name") == "user_error" and missing in str(e.get("event_data"))
        ]
        assert len(events) == 1, session_id
        assert events[0]["severity"] == "WARNING"
        assert events[0]["event_data"]["status_code"] == 404
        assert events[0]["event_data"]["error_type"] == "NotFoundError"

    def test_a_400_naming_a_category_fails_the_poll_at_once(
        self, server: LocalServer, trainer: TrainingClient
    ) -> None:
        """A poll answered 400 {error, category: user} is not polled again."""
        body = {"error": "bad loss config", "category": "user"}
        before = server.app.path_counts["/api/v1/retrieve_future"]
        server.faults.inject_status("/api/v1/retrieve_future", 400, times=4, body=body)
        try:
            with pytest.raises(BadRequestError, match="bad loss config"):
                trainer.forward_backward([datum()], "cross_entropy").result(WAIT_S)
        finally:
            server.faults.clear()
        assert server.app.path_counts["/api/v1/retrieve_future"] - before == 1


class TestParameters:
    def test_sample_sends_the_extra_logprob_options(
        self, server: LocalServer, service: ServiceClient
    ) -> None:
        """The extra options reach the wire; alternatives the server did not give are an error."""
        sampler = service.create_sampling_client(
            base_model=BASE, record_stability_info=True
        ).result(WAIT_S)
        target = types.TensorData.from_numpy(np.full((PROMPT.length - 1, 1), 104, dtype=np.int64))
        with recording(server) as seen:
            asked = sampler.sample(
                PROMPT, 1, GREEDY, include_prompt_logprobs=True, topk_sample_logprobs=2,
                target_prompt_logprobs=target, prompt_alt_tokens_k=3, prompt_logprobs_last_n=2,
            )
            with pytest.raises(RuntimeError, match="returned no prompt_alt_tokens"):
                asked.result(WAIT_S)
            last = sampler.compute_logprobs(PROMPT, prompt_logprobs_last_n=2).result(WAIT_S)
        sent, scored = (s.body for s in seen.to("asample"))
        assert last[:-2] == [None] * (PROMPT.length - 2) and None not in last[-2:]
        assert (sent["topk_sample_logprobs"], sent["prompt_alt_tokens_k"]) == (2, 3)
        assert sent["prompt_logprobs_last_n"] == 2 and sent["record_stability_info"] is True
        assert sent["target_prompt_logprobs"]["shape"] == [PROMPT.length - 1, 1]
        assert scored["prompt_logprobs"] is True and scored["prompt_logprobs_last_n"] == 2

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"prompt_logprobs_last_n": 1}, "include_prompt_logprobs"),
            ({"include_prompt_logprobs": True, "prompt_logprobs_last_n": 99}, "1..5"),
            ({"topk_sample_logprobs": -1}, "topk_sample_logprobs"),
            ({"prompt_alt_tokens_k": 1.5}, "prompt_alt_tokens_k"),
        ],
    )
    def test_bad_extra_options_are_refused_naming_the_field(
        self, service: ServiceClient, kwargs: dict[str, object], match: str
    ) -> None:
        """Each bad option raises a ValueError naming it, before anything is sent."""
        sampler = service.create_sampling_client(base_model=BASE).result(WAIT_S)
        with pytest.raises(ValueError, match=match):
            sampler.sample(PROMPT, 1, GREEDY, **kwargs)

    def test_optim_step_takes_optim_params_or_the_older_adam_params(
        self, server: LocalServer, trainer: TrainingClient
    ) -> None:
        """Both spellings send adam_params; giving both is a ValueError."""
        with recording(server) as seen:
            trainer.forward_backward([datum()], "cross_entropy")
            trainer.optim_step(types.AdamParams(learning_rate=1e-3)).result(WAIT_S)
            trainer.optim_step(adam_params=types.AdamParams(learning_rate=2e-3)).result(WAIT_S)
        rates = [s.body["adam_params"]["learning_rate"] for s in seen.to("optim_step")]
        assert rates == [1e-3, 2e-3]
        with pytest.raises(ValueError, match="both"):
            trainer.optim_step(types.AdamParams(), adam_params=types.AdamParams())

    def test_another_optimizer_is_chosen_at_creation_and_stepped_with_its_params(
        self, server: LocalServer, service: ServiceClient
    ) -> None:
        """optimizer=DimuonOptimizerConfig() is sent; DimuonParams steps train the model."""
        with recording(server) as seen:
            default = service.create_lora_training_client(BASE, rank=4).result(WAIT_S)
            dimuon = service.create_lora_training_client(
                BASE, rank=4, seed=5, optimizer=types.DimuonOptimizerConfig()
            ).result(WAIT_S)
            losses = []
            for _ in range(6):
                fb = dimuon.forward_backward([datum()], "cross_entropy")
                dimuon.optim_step(types.DimuonParams(learning_rate=0.05)).result(WAIT_S)
                losses.append(fb.result(WAIT_S).metrics["loss:sum"])
        configs = [s.body["optimizer_config"] for s in seen.to("create_model")]
        assert configs == [{"type": "adamw"}, {"type": "dimuon", "version": 1}]
        sent = seen.to("optim_step")[0].body
        assert sent["optimizer_params"]["type"] == "dimuon" and "adam_params" not in sent
        assert losses[-1] < losses[0]
        with pytest.raises(BadRequestError, match="created with dimuon"):
            dimuon.optim_step(types.AdamParams()).result(WAIT_S)
        with pytest.raises(BadRequestError, match="created with AdamW"):
            default.optim_step(types.DimuonParams(learning_rate=0.1)).result(WAIT_S)
        with pytest.raises(TypeError, match="DimuonOptimizerConfig"):
            service.create_lora_training_client(BASE, optimizer="sgd")  # type: ignore[arg-type]

    def test_saves_carry_user_metadata_and_overwrite_and_loads_a_token(
        self, server: LocalServer, trainer: TrainingClient
    ) -> None:
        """user_metadata lands on the checkpoints; overwrite and weights_access_token are sent."""
        with recording(server) as seen:
            state = trainer.save_state("meta", overwrite=True, user_metadata={"k": "v"})
            path = state.result(WAIT_S).path
            trainer.save_weights_for_sampler("smeta", user_metadata={"s": "1"}).result(WAIT_S)
            trainer.load_state(path, weights_access_token="tok-123").result(WAIT_S)
        assert seen.to("save_weights")[0].body["overwrite"] is True
        assert seen.to("load_weights")[0].body["weights_access_token"] == "tok-123"
        with rest_for(server) as rest:
            stored = rest.list_checkpoints(trainer.model_id).result(WAIT_S).checkpoints
        by_id = {c.checkpoint_id: c.user_metadata for c in stored}
        assert by_id == {"weights/meta": {"k": "v"}, "sampler_weights/smeta": {"s": "1"}}

    def test_resume_with_optimizer_takes_user_metadata(
        self, server: LocalServer, service: ServiceClient, trainer: TrainingClient
    ) -> None:
        """create_training_client_from_state_with_optimizer_async(user_metadata=...) works."""
        path = trainer.save_state("resume").result(WAIT_S).path

        async def resume() -> TrainingClient:
            return await service.create_training_client_from_state_with_optimizer_async(
                path, user_metadata={"resumed": "yes"}
            )

        resumed = asyncio.run(resume())
        with rest_for(server) as rest:
            run = rest.get_training_run(resumed.model_id).result(WAIT_S)
        assert run.user_metadata == {"resumed": "yes"}
        assert resumed.forward_backward([datum()], "cross_entropy").result(WAIT_S).metrics

    def test_retry_config_must_be_a_retry_policy(self, service: ServiceClient) -> None:
        """A RetryPolicy is taken; anything else is a TypeError naming the fix."""
        policy = RetryPolicy(base_delay_s=0.01)
        sampler = service.create_sampling_client(base_model=BASE, retry_config=policy)
        assert sampler.sample(PROMPT, 1, GREEDY).result(WAIT_S).sequences
        with pytest.raises(TypeError, match="RetryPolicy"):
            service.create_sampling_client(base_model=BASE, retry_config={"max": 1})  # type: ignore[arg-type]


class TestNewMethods:
    def test_a_trainer_makes_samplers_from_saved_weights(self, trainer: TrainingClient) -> None:
        """create_sampling_client(path) and its async twin give working samplers."""
        path = trainer.save_weights_for_sampler("for-sampler").result(WAIT_S).path
        sampler = trainer.create_sampling_client(path).result(WAIT_S)
        assert sampler.model_path == path and sampler.sample(PROMPT, 1, GREEDY).result(WAIT_S)

        async def make() -> SamplingClient:
            return await trainer.create_sampling_client_async(path)

        assert asyncio.run(make()).get_base_model() == BASE

    def test_external_weights_are_saved_and_listed_for_download(
        self, server: LocalServer, trainer: TrainingClient
    ) -> None:
        """save_weights_external gives an external_weights path with signed file URLs."""
        path = trainer.save_weights_external("export").result(WAIT_S).path
        assert path == f"tinker://{trainer.model_id}/external_weights/export"
        with rest_for(server) as rest:
            urls = rest.get_external_weights_urls(path).result(WAIT_S).urls
        assert set(urls) == {"arrays.npz", "meta.json"}
        with pytest.raises(ValueError, match="1 to 10"):
            trainer.save_weights_external("x", age_encryption_recipients=[])

    def test_sampling_client_create_makes_or_joins_a_sampler(self, service: ServiceClient) -> None:
        """SamplingClient.create(service, ...) makes one; with a session id it joins it."""
        made = SamplingClient.create(service, base_model=BASE).result(WAIT_S)
        joined = SamplingClient.create(
            service, sampling_session_id=made.sampling_session_id
        ).result(WAIT_S)
        assert joined.sampling_session_id == made.sampling_session_id
        assert asyncio.run(joined.get_base_model_async()) == BASE
        with pytest.raises(TypeError, match="ServiceClient"):
            SamplingClient.create(object(), base_model=BASE)

    def test_on_queue_state_change_warns_once_a_minute(self, service: ServiceClient) -> None:
        """A pause reported by the user warns in the official words; a repeat within 60 s not."""
        sampler = service.create_sampling_client(base_model=BASE).result(WAIT_S)
        with structlog.testing.capture_logs() as logs:
            sampler.on_queue_state_change(QueueState.PAUSED_RATE_LIMIT, None)
            sampler.on_queue_state_change(QueueState.PAUSED_RATE_LIMIT, None)
        warned = [e for e in logs if e["log_level"] == "warning"]
        assert len(warned) == 1
        assert warned[0]["message"] == (
            f"Sampling is paused for sampler {sampler.sampling_session_id}. "
            "Reason: concurrent sampler weights limit hit"
        )

    def test_console_urls_name_the_session_and_the_run(
        self, service: ServiceClient, trainer: TrainingClient
    ) -> None:
        """get_console_url points at the session, the trainer's at its training run."""
        assert service.get_console_url().endswith(f"/sessions/{service.session_id}")
        assert trainer.get_console_url().endswith(f"/training_runs/{trainer.model_id}")

    def test_get_telemetry_logs_into_the_session(self, server: LocalServer) -> None:
        """An event logged through get_telemetry() reaches the server with the session's."""
        with ServiceClient(base_url=server.url, api_key=KEY, telemetry_enabled=True) as sc:
            telemetry = sc.get_telemetry()
            assert telemetry is not None
            assert telemetry.log("eval_done", {"score": 0.5})
            trainer = sc.create_lora_training_client(BASE, rank=4).result(WAIT_S)
            assert trainer.get_telemetry() is not None
        sent = [e for e in server.service.telemetry_events if e.get("event_name") == "eval_done"]
        assert [e["event_data"] for e in sent] == [{"score": 0.5}]
        with ServiceClient(base_url=server.url, api_key=KEY, telemetry_enabled=False) as quiet:
            assert quiet.get_telemetry() is None

    def test_copy_weights_goes_to_the_session_or_the_project(
        self, server: LocalServer, service: ServiceClient, trainer: TrainingClient
    ) -> None:
        """Without a project the copy is a new run of this session; with one, of that project."""
        path = trainer.save_state("to-copy").result(WAIT_S).path
        copied = service.copy_weights(path).result(WAIT_S)
        assert copied.startswith(f"tinker://{service.session_id}:train:")
        assert copied.endswith("/weights/to-copy") and copied != path
        with ServiceClient(project_id="proj-copies", base_url=server.url, api_key=KEY) as sc:
            elsewhere = sc.copy_weights(path, ttl_seconds=7200).result(WAIT_S)
        with rest_for(server) as rest:
            usage = rest.get_current_checkpoint_storage_usage("proj-copies").result(WAIT_S)
            info = rest.get_weights_info_by_tinker_path(elsewhere).result(WAIT_S)
        assert [u.checkpoint_count for u in usage.data] == [1]
        assert info.base_model == BASE

    def test_create_custom_loss_checks_its_function_and_gives_a_handle(
        self, service: ServiceClient, trainer: TrainingClient
    ) -> None:
        """A handle names the loss and its inputs; a mismatched input_ranks is refused."""

        def neg_ll(logprobs: object, weights: object) -> object:
            raise AssertionError("not called without torch")

        handle = service.create_custom_loss(neg_ll, {"logprobs": 1, "weights": 1}).result(WAIT_S)
        assert isinstance(handle, LossHandle)
        assert (handle.name, handle.inputs, handle.session_id) == (
            "neg_ll", ("weights",), service.session_id
        )
        with pytest.raises(ValueError, match="input_ranks"):
            service.create_custom_loss(neg_ll, {"logprobs": 1})
        if importlib.util.find_spec("torch") is None:
            with pytest.raises(ImportError, match="pip install torch"):
                trainer.forward_backward_custom([datum()], handle)

    def test_a_custom_loss_handle_trains_through_torch(
        self, service: ServiceClient, trainer: TrainingClient
    ) -> None:
        """A negative log-likelihood handle gives cross_entropy's loss and reports its metric."""
        pytest.importorskip("torch")

        def neg_ll(logprobs: Any, weights: Any) -> tuple[Any, dict[str, Any]]:
            loss = -(logprobs * weights).sum()
            return loss, {"custom/neg_ll:sum": loss}

        handle = service.create_custom_loss(neg_ll, {"logprobs": 1, "weights": 1}).result(WAIT_S)
        expected = trainer.forward([datum()], "cross_entropy").result(WAIT_S).metrics["loss:sum"]
        out = trainer.forward_backward_custom([datum()], handle).result(WAIT_S)
        assert out.metrics["loss:sum"] == pytest.approx(expected, rel=1e-4)
        assert out.metrics["custom/neg_ll:sum"] == pytest.approx(expected, rel=1e-4)
