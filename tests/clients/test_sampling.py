"""SamplingClient actors against the embedded server: backpressure, queue states, restarts."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
import structlog

from supervisors import kill
from tinkex_actors import types
from tinkex_actors.clients.backpressure import rate_limiter_for
from tinkex_actors.local import LocalServer, ServerSettings
from tinkex_actors.service.service_client import ServiceClient

WAIT_S = 60.0
PROMPT = types.ModelInput.from_ints(list(b"abc"))
KEY = "tml-sampling-tests"


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(settings=ServerSettings(long_poll_timeout_s=0.5), api_key=KEY) as srv:
        yield srv


@pytest.fixture
def service(server: LocalServer) -> Iterator[ServiceClient]:
    with ServiceClient(base_url=server.url, api_key=KEY) as sc:
        yield sc
    server.faults.clear()


def _eventually(condition: Callable[[], bool], timeout_s: float = WAIT_S) -> bool:
    """Wait for a condition other threads make true, up to a deadline."""
    deadline = time.monotonic() + timeout_s
    tick = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            return False
        tick.wait(0.01)
    return True


def params(seed: int = 1, max_tokens: int = 4) -> types.SamplingParams:
    return types.SamplingParams(max_tokens=max_tokens, seed=seed)


class TestSampling:
    def test_seeded_samples_repeat_and_carry_sequence_ids(self, service: ServiceClient) -> None:
        """The same seed gives the same tokens; each sequence has the promise's id."""
        sampler = service.create_sampling_client(base_model="tiny-byte-lm").result(WAIT_S)
        a = sampler.sample(PROMPT, 3, params()).result(WAIT_S)
        b = sampler.sample(PROMPT, 3, params()).result(WAIT_S)
        assert [s.tokens for s in a.sequences] == [s.tokens for s in b.sequences]
        assert len({s.sequence_id for s in a.sequences}) == 3

    def test_seq_ids_never_repeat(self, server: LocalServer, service: ServiceClient) -> None:
        """Twenty calls send twenty distinct seq_ids."""
        sampler = service.create_sampling_client(base_model="tiny-byte-lm").result(WAIT_S)
        futures = [sampler.sample(PROMPT, 1, params(i, 1)) for i in range(20)]
        for f in futures:
            f.result(WAIT_S)
        seen = server.service.samplers[sampler.sampling_session_id].seen_seq_ids
        assert sorted(seen) == list(range(20))  # the first seq_id is 0, as officially

    def test_prompt_logprobs_and_compute_logprobs(self, service: ServiceClient) -> None:
        """compute_logprobs gives one value per prompt token, None first."""
        sampler = service.create_sampling_client(base_model="tiny-byte-lm").result(WAIT_S)
        lps = sampler.compute_logprobs(PROMPT).result(WAIT_S)
        assert lps[0] is None and len(lps) == 3 and all(v < 0 for v in lps[1:])  # type: ignore[operator]

    def test_bad_arguments_are_refused_before_any_request(
        self, server: LocalServer, service: ServiceClient
    ) -> None:
        """num_samples and prompt types are checked in the caller's thread."""
        sampler = service.create_sampling_client(base_model="tiny-byte-lm").result(WAIT_S)
        before = server.app.request_count
        with pytest.raises(ValueError, match="num_samples"):
            sampler.sample(PROMPT, 0, params())
        with pytest.raises(TypeError, match="ModelInput"):
            sampler.sample([1, 2], 1, params())  # type: ignore[arg-type]
        assert server.app.request_count == before


class TestBackpressure:
    def test_a_429_opens_a_window_every_sampler_of_the_key_waits_out(
        self, server: LocalServer, service: ServiceClient
    ) -> None:
        """A 429 backs off (shared by URL and key), then the sample goes through."""
        limiter = rate_limiter_for(server.url, KEY)
        before = limiter.stats().backoffs
        sampler = service.create_sampling_client(base_model="tiny-byte-lm").result(WAIT_S)
        server.faults.inject_status("/api/v1/asample", 429, retry_after_s=0.2)
        out = sampler.sample(PROMPT, 1, params()).result(WAIT_S)
        assert len(out.sequences) == 1
        assert limiter.stats().backoffs == before + 1
        assert service._limiter is limiter

    def test_the_budget_is_empty_after_every_request_settled(self, service: ServiceClient) -> None:
        """Tokens are released on success and on failure."""
        sampler = service.create_sampling_client(base_model="tiny-byte-lm").result(WAIT_S)
        ok = [sampler.sample(PROMPT, 1, params(i, 1)) for i in range(10)]
        for f in ok:
            f.result(WAIT_S)
        bad = sampler.sample(types.ModelInput.from_ints([999]), 1, params())
        with pytest.raises(Exception, match="vocabulary"):
            bad.result(WAIT_S)
        stats = service._budget.stats()
        assert stats.in_flight == 0 and stats.in_flight_bytes == 0
        assert stats.granted == stats.released

    def test_a_killed_sampler_actor_is_restarted_and_its_requests_still_settle(
        self, server: LocalServer, service: ServiceClient
    ) -> None:
        """Requests queued when the actor died are sent by its successor; nothing leaks."""
        sampler = service.create_sampling_client(base_model="tiny-byte-lm").result(WAIT_S)
        server.faults.delay("/api/v1/asample", 0.05, times=5)
        futures = [sampler.sample(PROMPT, 1, params(i, 2)) for i in range(5)]
        victim = service.registry.whereis(("sampling", sampler.sampling_session_id))
        assert victim is not None
        kill(victim)
        assert all(len(f.result(WAIT_S).sequences) == 1 for f in futures)
        assert service._budget.stats().in_flight == 0


class TestQueueStates:
    def test_a_paused_sampling_queue_warns_once_in_the_official_words(
        self, server: LocalServer, service: ServiceClient
    ) -> None:
        """try_again with paused_capacity logs one WARNING naming the sampler and reason."""
        sampler = service.create_sampling_client(base_model="tiny-byte-lm").result(WAIT_S)
        server.faults.pause("sampling", "paused_capacity", "GPUs are busy")
        with structlog.testing.capture_logs() as logs:
            future = sampler.sample(PROMPT, 1, params())
            with pytest.raises(TimeoutError):
                future.result(2.0)
            server.faults.resume("sampling")
            future.result(WAIT_S)
        paused = [e for e in logs if e["event"] == "queue_paused"]
        assert len(paused) == 1
        assert paused[0]["message"] == (
            f"Sampling is paused for sampler {sampler.sampling_session_id}. Reason: GPUs are busy"
        )


def _sample_in_child(client: object) -> list[int]:
    """Runs in a spawned process: the unpickled client samples on its own connections."""
    with client:  # type: ignore[attr-defined]
        out = client.sample(PROMPT, 1, params(7)).result(WAIT_S)  # type: ignore[attr-defined]
        return list(out.sequences[0].tokens)


class TestHandles:
    def test_a_handle_makes_a_clone_whose_seq_ids_never_collide(
        self, server: LocalServer, service: ServiceClient
    ) -> None:
        """from_sampler_handle samples the same sampler with its own clone id."""
        sampler = service.create_sampling_client(base_model="tiny-byte-lm").result(WAIT_S)
        handle = sampler.get_sampler_handle()
        assert KEY not in handle and "tml-" not in handle
        with type(sampler).from_sampler_handle(handle, api_key=KEY) as clone:
            a = clone.sample(PROMPT, 1, params(3)).result(WAIT_S)
            b = sampler.sample(PROMPT, 1, params(3)).result(WAIT_S)
        assert a.sequences[0].tokens == b.sequences[0].tokens
        seen = server.service.samplers[sampler.sampling_session_id].seen_seq_ids
        assert len(seen) == 2 and 0 in seen and max(seen) > 1_000_000_000

    def test_a_bad_handle_is_refused_naming_the_fix(self) -> None:
        """A string that is not a handle raises a clear ValueError."""
        from tinkex_actors.clients.sampling import SamplingClient

        with pytest.raises(ValueError, match="get_sampler_handle"):
            SamplingClient.from_sampler_handle("not-a-handle")

    def test_a_pickled_client_samples_in_a_spawned_process(
        self, server: LocalServer, service: ServiceClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Pickle crosses a spawn process pool; the child authenticates with its own env."""
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        monkeypatch.setenv("TINKER_API_KEY", KEY)
        sampler = service.create_sampling_client(base_model="tiny-byte-lm").result(WAIT_S)
        expected = sampler.sample(PROMPT, 1, params(7)).result(WAIT_S).sequences[0].tokens
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            tokens = pool.submit(_sample_in_child, sampler).result(WAIT_S * 2)
        assert tokens == list(expected)


class TestFleet:
    def test_1000_concurrent_samples_from_4_samplers_complete_with_distinct_seq_ids(
        self, server: LocalServer, service: ServiceClient
    ) -> None:
        """250 samples each from 4 samplers in flight at once; every seq_id used once."""
        samplers = [service.create_sampling_client(base_model="tiny-byte-lm").result(WAIT_S)
                    for _ in range(4)]
        futures = [s.sample(PROMPT, 1, params(i, 1)) for i in range(250) for s in samplers]
        assert all(len(f.result(WAIT_S).sequences) == 1 for f in futures)
        for s in samplers:
            seen = server.service.samplers[s.sampling_session_id].seen_seq_ids
            assert sorted(seen) == list(range(250))
        stats = service._budget.stats()
        assert stats.in_flight == 0 and stats.in_flight_bytes == 0

    def test_a_fleet_of_128_clients_runs_on_a_bounded_number_of_threads(
        self, service: ServiceClient
    ) -> None:
        """64 training and 64 sampling clients, all busy at once: under 64 threads in all
        (client actors share the scheduler's workers instead of a thread each)."""
        before = threading.active_count()
        trainers = [service.create_lora_training_client("tiny-byte-lm", rank=2)
                    for _ in range(64)]
        samplers = [service.create_sampling_client(base_model="tiny-byte-lm")
                    for _ in range(64)]
        trainers = [t.result(WAIT_S) for t in trainers]  # type: ignore[attr-defined]
        samplers = [s.result(WAIT_S) for s in samplers]  # type: ignore[attr-defined]
        datum = types.Datum(
            model_input=types.ModelInput.from_ints(list(b"abcd")),
            loss_fn_inputs={"target_tokens": list(b"bcde")},
        )
        steps = [t.forward_backward([datum], "cross_entropy") for t in trainers]
        samples = [s.sample(PROMPT, 1, params(i, 2)) for i, s in enumerate(samplers)]
        peak = threading.active_count()
        for future in [*steps, *samples]:
            future.result(WAIT_S)
            peak = max(peak, threading.active_count())
        server_threads = sum(t.name.startswith("tinkex-local") for t in threading.enumerate())
        assert peak - before - server_threads < 64, f"{peak - before} threads for 128 clients"

    def test_user_errors_fail_at_once_with_no_retry(
        self, server: LocalServer, service: ServiceClient
    ) -> None:
        """A bad prompt is answered 400 and fails after one request."""
        sampler = service.create_sampling_client(base_model="tiny-byte-lm").result(WAIT_S)
        before = server.app.path_counts["/api/v1/asample"]
        with pytest.raises(Exception, match="vocabulary"):
            sampler.sample(types.ModelInput.from_ints([100_000]), 1, params()).result(WAIT_S)
        assert server.app.path_counts["/api/v1/asample"] - before == 1

    def test_a_5xx_storm_is_retried_until_it_passes(
        self, server: LocalServer, service: ServiceClient
    ) -> None:
        """Five 503s in a row on asample, then success: the sample completes."""
        sampler = service.create_sampling_client(base_model="tiny-byte-lm").result(WAIT_S)
        before = server.app.path_counts["/api/v1/asample"]
        server.faults.inject_status("/api/v1/asample", 503, times=3)
        out = sampler.sample(PROMPT, 1, params()).result(WAIT_S)
        assert len(out.sequences) == 1
        assert server.app.path_counts["/api/v1/asample"] - before == 4

    def test_a_408_on_asample_is_retried_like_an_outage(
        self, server: LocalServer, service: ServiceClient
    ) -> None:
        """Two 408s on asample (the server held the request too long), then the sample."""
        sampler = service.create_sampling_client(base_model="tiny-byte-lm").result(WAIT_S)
        before = server.app.path_counts["/api/v1/asample"]
        server.faults.inject_status("/api/v1/asample", 408, times=2)
        out = sampler.sample(PROMPT, 1, params()).result(WAIT_S)
        assert len(out.sequences) == 1
        assert server.app.path_counts["/api/v1/asample"] - before == 3

    def test_cancelled_samples_release_the_budget(self, service: ServiceClient) -> None:
        """Cancelling futures (sent or not) leaves nothing held."""
        sampler = service.create_sampling_client(base_model="tiny-byte-lm").result(WAIT_S)
        futures = [sampler.sample(PROMPT, 1, params(i, 8)) for i in range(20)]
        for f in futures[::2]:
            f.cancel()
        for f in futures[1::2]:
            f.result(WAIT_S)
        sampler.sample(PROMPT, 1, params()).result(WAIT_S)  # a later dispatch round
        assert all(f.cancelled() for f in futures[::2])
        assert _eventually(lambda: service._budget.stats().in_flight == 0)
        stats = service._budget.stats()
        assert stats.granted == stats.released and stats.in_flight_bytes == 0


class TestOtherServers:
    def test_an_inline_sample_result_needs_no_poll(
        self, server: LocalServer, service: ServiceClient
    ) -> None:
        """asample answered with the SampleResponse itself settles at once."""
        sampler = service.create_sampling_client(base_model="tiny-byte-lm").result(WAIT_S)
        body = {"sequences": [{"tokens": [1, 2], "logprobs": [-0.5, -0.25],
                               "stop_reason": "length"}]}
        server.faults.inject_status("/api/v1/asample", 200, body=body)
        out = sampler.sample(PROMPT, 1, params()).result(WAIT_S)
        assert out.sequences[0].tokens == [1, 2]
