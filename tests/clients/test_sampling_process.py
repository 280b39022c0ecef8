"""Out-of-process sampling: the sampler in a supervised child process."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from tinkex_actors import types
from tinkex_actors.local import LocalServer
from tinkex_actors.service.service_client import ServiceClient

WAIT_S = 120.0
PROMPT = types.ModelInput.from_ints(list(b"abc"))


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(api_key="tml-sampling-process") as srv:
        yield srv


@pytest.fixture
def service(server: LocalServer) -> Iterator[ServiceClient]:
    with ServiceClient(base_url=server.url, api_key="tml-sampling-process") as sc:
        yield sc
    server.faults.clear()


def params(seed: int) -> types.SamplingParams:
    return types.SamplingParams(max_tokens=4, seed=seed)


class TestOutOfProcess:
    def test_samples_equal_the_in_process_ones(self, service: ServiceClient) -> None:
        """The same seed gives the same tokens in the child process as in this one."""
        remote = service.create_sampling_client(base_model="tiny-byte-lm",
                                                out_of_process=True).result(WAIT_S)
        local = service.create_sampling_client(base_model="tiny-byte-lm").result(WAIT_S)
        a = remote.sample(PROMPT, 2, params(5)).result(WAIT_S)
        b = local.sample(PROMPT, 2, params(5)).result(WAIT_S)
        assert [s.tokens for s in a.sequences] == [s.tokens for s in b.sequences]
        lps = remote.compute_logprobs(PROMPT).result(WAIT_S)
        assert lps[0] is None and len(lps) == 3
        assert service._host_state is not None
        assert service._host_state.child_pid != os.getpid()

    def test_a_killed_child_is_restarted_and_pending_calls_still_settle(
        self, server: LocalServer, service: ServiceClient
    ) -> None:
        """SIGKILL the child mid-run: a new child takes the calls; every Future settles."""
        remote = service.create_sampling_client(base_model="tiny-byte-lm",
                                                out_of_process=True).result(WAIT_S)
        remote.sample(PROMPT, 1, params(0)).result(WAIT_S)
        state = service._host_state
        assert state is not None and state.child_pid is not None
        server.faults.delay("/api/v1/asample", 1.0, times=3)
        futures = [remote.sample(PROMPT, 1, params(i)) for i in range(3)]
        os.kill(state.child_pid, signal.SIGKILL)
        assert all(len(f.result(WAIT_S).sequences) == 1 for f in futures)
        assert state.children_started == 2

    def test_bad_arguments_are_refused_in_the_parent(self, service: ServiceClient) -> None:
        """Argument errors raise at the call, before anything crosses to the child."""
        remote = service.create_sampling_client(base_model="tiny-byte-lm",
                                                out_of_process=True).result(WAIT_S)
        with pytest.raises(ValueError, match="num_samples"):
            remote.sample(PROMPT, 0, params(1))

    def test_closing_ends_the_child(self, server: LocalServer) -> None:
        """After close() the child process is gone."""
        with ServiceClient(base_url=server.url, api_key="tml-sampling-process") as sc:
            remote = sc.create_sampling_client(base_model="tiny-byte-lm",
                                               out_of_process=True).result(WAIT_S)
            remote.sample(PROMPT, 1, params(1)).result(WAIT_S)
            state = sc._host_state
        assert state is not None and state.child_pid is not None
        with pytest.raises(ProcessLookupError):
            os.kill(state.child_pid, 0)
