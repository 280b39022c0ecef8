"""The arguments of SamplingClient calls, checked in the caller's thread before any is sent."""

from __future__ import annotations

from tinkex_actors import types

__all__ = ["alt_tokens_returned", "check_extra_sample_args", "check_sample_args"]


def check_sample_args(prompt: object, num_samples: object, sampling_params: object) -> None:
    """Refuse bad `sample` arguments in the caller's thread, before anything is sent."""
    if not isinstance(prompt, types.ModelInput):
        raise TypeError(
            f"prompt is a {type(prompt).__name__}; pass a types.ModelInput "
            "(e.g. ModelInput.from_ints(tokens))"
        )
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples={num_samples!r} must be an int >= 1")
    if not isinstance(sampling_params, types.SamplingParams):
        raise TypeError("sampling_params must be a types.SamplingParams")


def check_extra_sample_args(
    prompt: types.ModelInput,
    include_prompt_logprobs: bool,
    topk_sample_logprobs: object,
    target_prompt_logprobs: object,
    prompt_alt_tokens_k: object,
    prompt_logprobs_last_n: object,
) -> None:
    """Refuse the extra logprob options the service would refuse, before anything is sent."""
    for name, value in (
        ("topk_sample_logprobs", topk_sample_logprobs),
        ("prompt_alt_tokens_k", prompt_alt_tokens_k),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name}={value!r} must be an int >= 0 (0: not asked for)")
    if target_prompt_logprobs is not None:
        if not isinstance(target_prompt_logprobs, types.TensorData):
            raise TypeError(
                "target_prompt_logprobs must be a types.TensorData of token ids, "
                f"got a {type(target_prompt_logprobs).__name__}"
            )
        shape = target_prompt_logprobs.shape
        if target_prompt_logprobs.dtype != "int64" or shape is None or len(shape) != 2:
            raise ValueError(
                "target_prompt_logprobs must be a 2-D int64 TensorData of token ids, "
                f"[len(prompt) - 1, K]; got dtype {target_prompt_logprobs.dtype}, shape {shape}"
            )
    if prompt_logprobs_last_n is None:
        return
    if (
        isinstance(prompt_logprobs_last_n, bool)
        or not isinstance(prompt_logprobs_last_n, int)
        or prompt_logprobs_last_n < 1
    ):
        raise ValueError(f"prompt_logprobs_last_n={prompt_logprobs_last_n!r} must be an int >= 1")
    if not include_prompt_logprobs:
        raise ValueError(
            "prompt_logprobs_last_n applies to prompt logprobs; pass include_prompt_logprobs=True"
        )
    if prompt_logprobs_last_n > prompt.length - 1:
        raise ValueError(
            f"prompt_logprobs_last_n={prompt_logprobs_last_n} is more than the prompt's "
            f"{prompt.length} tokens minus the first; use 1..{max(prompt.length - 1, 1)}"
        )


def alt_tokens_returned(k: int, results: list[types.SampleResponse]) -> types.SampleResponse:
    """The response, if it holds the prompt alternatives asked for (as official clients check:
    a server that predates them ignores the field and answers without)."""
    if results[0].prompt_alt_tokens is None:
        raise RuntimeError(
            f"prompt_alt_tokens_k={k} was asked for but the server returned no "
            "prompt_alt_tokens; it may predate this feature"
        )
    return results[0]
