"""The cookbook's RL loop shape, written for the official SDK.

Each iteration: `save_weights_and_get_sampling_client()` used straight as the sampler,
`await sample_async` fanned out over a group of prompts, rewards, then an
importance-sampling `forward_backward` on the sampled tokens with their sampling logprobs
and advantages, and `optim_step`. Prints one JSON line of what it saw.
"""

from __future__ import annotations

import asyncio
import json
import os

import tinker
from tinker import types

BASE_MODEL = os.environ.get("SCRIPT_BASE_MODEL", "tinkex/tiny-byte-lm")
PROMPTS = ["User: 1+1=\n\nAssistant:", "User: 2+2=\n\nAssistant:", "User: 3+1=\n\nAssistant:"]
GROUP = 4
MAX_TOKENS = 6


def reward(tokens: list[int], text: str) -> float:
    """A toy reward: the share of ASCII tokens, plus a bonus for a digit in the text."""
    ascii_share = sum(t < 128 for t in tokens) / max(len(tokens), 1)
    return ascii_share + (0.5 if any(ch.isdigit() for ch in text) else 0.0)


async def iteration(client: object, tokenizer: object, step: int) -> dict[str, object]:
    sampler = client.save_weights_and_get_sampling_client()
    prompts = [tinker.ModelInput.from_ints(tokenizer.encode(p)) for p in PROMPTS]
    params = tinker.SamplingParams(max_tokens=MAX_TOKENS, temperature=1.0, seed=step)
    responses = await asyncio.gather(
        *[
            sampler.sample_async(prompt=p, num_samples=GROUP, sampling_params=params)
            for p in prompts
        ]
    )
    batch: list[types.Datum] = []
    rewards = []
    for prompt, response in zip(prompts, responses, strict=True):
        assert isinstance(response, tinker.SampleResponse)
        group = [reward(seq.tokens, tokenizer.decode(seq.tokens)) for seq in response.sequences]
        mean = sum(group) / len(group)
        rewards.extend(group)
        for seq, r in zip(response.sequences, group, strict=True):
            tokens = prompt.to_ints() + list(seq.tokens)
            n_prompt = prompt.length
            batch.append(
                types.Datum(
                    model_input=tinker.ModelInput.from_ints(tokens[:-1]),
                    loss_fn_inputs={
                        "target_tokens": tinker.TensorData(data=tokens[1:], dtype="int64"),
                        "logprobs": tinker.TensorData(
                            data=[0.0] * (n_prompt - 1) + list(seq.logprobs), dtype="float32"
                        ),
                        "advantages": tinker.TensorData(
                            data=[0.0] * (n_prompt - 1) + [r - mean] * len(seq.tokens),
                            dtype="float32",
                        ),
                    },
                )
            )
    fb = await client.forward_backward_async(batch, loss_fn="importance_sampling")
    optim = await client.optim_step_async(tinker.AdamParams(learning_rate=1e-2))
    result = await fb.result_async()
    await optim.result_async()
    return {"mean_reward": sum(rewards) / len(rewards), "loss": result.metrics["loss:sum"]}


async def main() -> None:
    service = tinker.ServiceClient()
    client = await service.create_lora_training_client_async(
        base_model=BASE_MODEL, rank=8, seed=5
    )
    tokenizer = client.get_tokenizer()
    stats = [await iteration(client, tokenizer, step) for step in range(3)]
    logprobs = await client.save_weights_and_get_sampling_client().compute_logprobs_async(
        tinker.ModelInput.from_ints(tokenizer.encode(PROMPTS[0]))
    )
    assert logprobs[0] is None and all(isinstance(x, float) for x in logprobs[1:])
    print(json.dumps({"stats": stats, "tinker_module": tinker.__name__}))


if __name__ == "__main__":
    asyncio.run(main())
