"""The SamplingClient of a ServiceClient with a recovery policy (see `session_recovery`).

Sampling changes nothing on the server, so nothing is logged: a sample whose request meets a
lost session waits for the rebuild (which gives the sampler a new sampling session over the
same weights) and is sent again; the user's Future settles once, with that answer.
"""

from __future__ import annotations

from typing import Any, Protocol

from tinkex_actors import types
from tinkex_actors.clients.sampling import SamplingClient
from tinkex_actors.clients.sampling_checks import check_sample_args
from tinkex_actors.futures.future import CancelledError, Future
from tinkex_actors.recovery.training import is_session_loss

__all__ = ["RecoverableSamplingClient", "SampleCall", "SampleRecovery"]

SampleCall = tuple[tuple[Any, ...], Future[Any]]
"""The arguments of a `sample` call and the user's Future it answers."""


class SampleRecovery(Protocol):
    """What a recoverable sampler needs of the recovery (`recovery.SessionRecovery`)."""

    generation: int
    """The rebuild generation: bumped by each rebuild of the session."""

    def hold_sample(
        self, sampler: RecoverableSamplingClient, call: SampleCall, gen: int, error: BaseException
    ) -> bool:
        """Hold a sample that met a loss for the rebuild (True), or False: send it again."""
        ...


class RecoverableSamplingClient(SamplingClient):
    """A SamplingClient whose samples survive a lost session (see the module docstring)."""

    def __init__(self, inner: SamplingClient, recovery: SampleRecovery) -> None:
        super().__init__(inner._state, inner._actor, runtime=inner._runtime)
        self._recovery = recovery
        self.waiting: list[SampleCall] = []
        """Samples held until the rebuild ends (guarded by the recovery's lock)."""

    def sample(
        self,
        prompt: types.ModelInput,
        num_samples: int,
        sampling_params: types.SamplingParams,
        include_prompt_logprobs: bool = False,
        topk_prompt_logprobs: int = 0,
        topk_sample_logprobs: int = 0,
        target_prompt_logprobs: types.TensorData | None = None,
        prompt_alt_tokens_k: int = 0,
        prompt_logprobs_last_n: int | None = None,
    ) -> Future[types.SampleResponse]:
        """Generate `num_samples` continuations of `prompt` (sent again after a recovery)."""
        check_sample_args(prompt, num_samples, sampling_params)
        lost = self._state.lost
        if lost is not None and not is_session_loss(lost):
            raise lost
        user: Future[types.SampleResponse] = Future(request_type="Sample")
        args = (
            prompt,
            num_samples,
            sampling_params,
            include_prompt_logprobs,
            topk_prompt_logprobs,
            topk_sample_logprobs,
            target_prompt_logprobs,
            prompt_alt_tokens_k,
            prompt_logprobs_last_n,
        )
        self.send(args, user)
        return user

    def send(self, args: tuple[Any, ...], user: Future[Any]) -> None:
        """Send one sample call; its answer settles `user` unless it meets a lost session."""
        gen = self._recovery.generation
        try:
            internal = SamplingClient.sample(self, *args)
        except BaseException as exc:
            if is_session_loss(exc):
                self._lost((args, user), gen, exc)
            else:
                user.set_exception(exc)
            return
        internal.add_done_callback(lambda f: self._settled((args, user), gen, f))

    def _settled(self, call: SampleCall, gen: int, internal: Future[Any]) -> None:
        user = call[1]
        if internal.cancelled():
            user.set_exception(CancelledError())
            return
        error = internal.exception(0)
        if error is None:
            user.set_result(internal.result(0))
        elif is_session_loss(error):
            self._lost(call, gen, error)
        else:
            user.set_exception(error)

    def _lost(self, call: SampleCall, gen: int, error: BaseException) -> None:
        if not self._recovery.hold_sample(self, call, gen, error):
            self.send(*call)  # the sampler was given a new session since this send
