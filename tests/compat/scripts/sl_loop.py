"""The cookbook's supervised loop shape, written for the official SDK.

Pipelined `forward_backward_async` + `optim_step_async` (the next step is submitted before the
previous one's results are read), `save_state`, then a resume with
`create_training_client_from_state_with_optimizer` that must continue exactly. The service
comes from TINKER_BASE_URL / TINKER_API_KEY; prints one JSON line of what it saw.
"""

from __future__ import annotations

import asyncio
import json
import os

import tinker
from tinker import types

BASE_MODEL = os.environ.get("SCRIPT_BASE_MODEL", "tinkex/tiny-byte-lm")
CONVERSATIONS = [
    ("What is 2+2?", "4"),
    ("Say hello in pig latin.", "ellohay"),
    ("Capital of France?", "Paris"),
]


def build_batch(tokenizer: object) -> list[types.Datum]:
    """Role-colon rendered conversations; the token buffer is reused, as the cookbook does."""
    batch = []
    buffer: list[int] = []
    for question, answer in CONVERSATIONS:
        prompt = tokenizer.encode(f"User: {question}\n\nAssistant:", add_special_tokens=True)
        completion = tokenizer.encode(f" {answer}\n\n", add_special_tokens=False)
        buffer.extend(prompt + completion)
        weights = [0.0] * (len(prompt) - 1) + [1.0] * len(completion)
        datum = types.Datum(
            model_input=tinker.ModelInput.from_ints(buffer[:-1]),
            loss_fn_inputs={
                "target_tokens": types.TensorData(data=buffer[1:], dtype="int64"),
                "weights": types.TensorData(data=weights, dtype="float32"),
            },
        )
        buffer.clear()
        batch.append(datum)
    return batch


async def train(client: object, batch: list[types.Datum], steps: int) -> list[float]:
    """Pipelined steps: submit step i+1 before reading step i."""
    adam = tinker.AdamParams(learning_rate=2e-2)
    pending = []
    losses = []
    for _ in range(steps):
        fb_future = await client.forward_backward_async(batch, loss_fn="cross_entropy")
        optim_future = await client.optim_step_async(adam)
        pending.append((fb_future, optim_future))
        if len(pending) > 1:
            losses.append(await read(*pending.pop(0)))
    while pending:
        losses.append(await read(*pending.pop(0)))
    return losses


async def read(fb_future: object, optim_future: object) -> float:
    fb = await fb_future.result_async()
    optim: tinker.OptimStepResponse = await optim_future.result_async()
    assert isinstance(optim, tinker.OptimStepResponse)
    logprobs = fb.loss_fn_outputs[0]["logprobs"]
    # A metric taken from `.data` must go into JSON (no numpy scalar).
    json.dumps({"first_logprob": logprobs.data[0], "sum": sum(logprobs.data)})
    return float(fb.metrics["loss:sum"])


async def main() -> None:
    service = tinker.ServiceClient()
    client = await service.create_lora_training_client_async(
        base_model=BASE_MODEL, rank=8, seed=11
    )
    batch = build_batch(client.get_tokenizer())
    losses = await train(client, batch, steps=4)
    state = client.save_state("sl-step4").result()
    assert state.path.startswith("tinker://")
    resumed = await service.create_training_client_from_state_with_optimizer_async(state.path)
    continued = await train(client, batch, steps=2)
    from_resume = await train(resumed, batch, steps=2)
    print(
        json.dumps(
            {
                "losses": losses,
                "continued": continued,
                "from_resume": from_resume,
                "state_kind": state.path.split("/")[-2],
                "tinker_module": tinker.__name__,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
