"""The official `tinker` SDK drives the embedded server unchanged: the compatibility proof."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest

tinker = pytest.importorskip("tinker")
T = pytest.importorskip("tinker.types")

from tinkex_actors.local.server import LocalServer, ServerSettings  # noqa: E402

TEXT = list(b"pig latin: hello -> ellohay")


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(
        settings=ServerSettings(long_poll_timeout_s=2.0), api_key="tml-" + "0" * 40
    ) as srv:
        yield srv


@pytest.fixture(scope="module")
def service(server: LocalServer) -> Iterator[object]:
    with tinker.ServiceClient(base_url=server.url, api_key="tml-" + "0" * 40) as sc:
        yield sc


def _datum() -> object:
    return T.Datum(
        model_input=T.ModelInput.from_ints(TEXT[:-1]),
        loss_fn_inputs={"target_tokens": TEXT[1:], "weights": [1.0] * (len(TEXT) - 1)},
    )


class TestOfficialSdkFlow:
    def test_a_full_training_and_sampling_flow_runs_unchanged(
        self, server: LocalServer, service: object
    ) -> None:
        """Session, LoRA client, training with falling loss, checkpoints, sampling, REST."""
        sc = service
        with warnings.catch_warnings():
            warnings.simplefilter("error", FutureWarning)
            rc = tinker.RestClient(base_url=server.url, api_key="tml-" + "0" * 40)
            caps = rc.get_server_capabilities().result()
            assert "tiny-byte-lm" in [m.model_name for m in caps.supported_models]
            tc = sc.create_lora_training_client(  # type: ignore[attr-defined]
                base_model="tiny-byte-lm", rank=8
            ).result()

            losses = []
            for _ in range(8):
                fb = tc.forward_backward([_datum()], "cross_entropy")
                opt = tc.optim_step(T.AdamParams(learning_rate=1e-2))
                losses.append(fb.result().metrics["loss:sum"])
                assert opt.result() is not None
            assert losses[-1] < losses[0] / 2

            fwd = tc.forward([_datum()], "cross_entropy").result()
            logprobs = fwd.loss_fn_outputs[0]["logprobs"].tolist()
            assert len(logprobs) == len(TEXT) - 1

            state = tc.save_state("half").result()
            assert state.path.startswith("tinker://") and state.path.endswith("/weights/half")
            sampler_path = tc.save_weights_for_sampler("final").result().path
            assert "/sampler_weights/final" in sampler_path

            sampler = tc.save_weights_and_get_sampling_client().result()
            out = sampler.sample(
                T.ModelInput.from_ints(TEXT[:5]),
                num_samples=2,
                sampling_params=T.SamplingParams(max_tokens=8, seed=3),
            ).result()
            assert len(out.sequences) == 2
            assert all(len(s.tokens) == 8 for s in out.sequences)
            assert all(s.sequence_id for s in out.sequences)
            lps = sampler.compute_logprobs(T.ModelInput.from_ints(TEXT[:6])).result()
            assert lps[0] is None and len(lps) == 6

            restored = sc.create_training_client_from_state_with_optimizer(  # type: ignore[attr-defined]
                state.path
            ).result()
            after = restored.forward_backward([_datum()], "cross_entropy").result()
            assert after.metrics["loss:sum"] == pytest.approx(fwd.metrics["loss:sum"], rel=1e-5)

            runs = rc.list_training_runs().result()
            assert tc.model_id in [r.training_run_id for r in runs.training_runs]
            ckpts = rc.list_checkpoints(tc.model_id).result().checkpoints
            assert {c.checkpoint_id for c in ckpts} >= {"weights/half", "sampler_weights/final"}
            rc.delete_checkpoint_from_tinker_path(sampler_path).result()
            ckpts = rc.list_checkpoints(tc.model_id).result().checkpoints
            assert "sampler_weights/final" not in {c.checkpoint_id for c in ckpts}


class TestServerDrivenConfiguration:
    def test_compressed_protobuf_and_batched_sample_polling_work_with_the_official_sdk(
        self,
    ) -> None:
        """With proto_compress_fwdbwd and sample_use_retrieve_futures on, the flow still runs."""
        settings = ServerSettings(
            long_poll_timeout_s=1.0,
            client_config={"proto_compress_fwdbwd": True, "sample_use_retrieve_futures": True},
        )
        with LocalServer(settings=settings, api_key="tml-" + "1" * 40) as srv, tinker.ServiceClient(
            base_url=srv.url, api_key="tml-" + "1" * 40
        ) as sc:
            tc = sc.create_lora_training_client(base_model="tiny-byte-lm", rank=4).result()
            first = tc.forward_backward([_datum()], "cross_entropy").result()
            tc.optim_step(T.AdamParams(learning_rate=1e-2)).result()
            second = tc.forward_backward([_datum()], "cross_entropy").result()
            assert second.metrics["loss:sum"] < first.metrics["loss:sum"]
            sampler = tc.save_weights_and_get_sampling_client().result()
            futures = [
                sampler.sample(T.ModelInput.from_ints(TEXT[:4]), num_samples=1,
                               sampling_params=T.SamplingParams(max_tokens=4, seed=i))
                for i in range(5)
            ]
            outs = [f.result(timeout=60) for f in futures]
            assert all(len(o.sequences) == 1 for o in outs)
            counts = srv.app.path_counts
            assert counts["/api/v1/forward_backward+zstd"] == 2
            assert counts["/api/v1/retrieve_futures"] >= 1
