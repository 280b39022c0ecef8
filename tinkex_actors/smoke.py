"""The main job until the full demo lands: a short real fine-tuning run, end to end.

With no `TINKER_API_KEY` / `TINKER_BASE_URL` it runs on the embedded server (started by the
ServiceClient); with them, on the service named there. It pipelines forward_backward and
optim_step, saves sampler weights, and samples what the model learned.
"""

from __future__ import annotations

import time

import numpy as np

import tinkex_actors as tx
from tinkex_actors import types

PAIRS = [("hello", "ellohay"), ("world", "orldway"), ("actor", "actoray"), ("train", "aintray")]
_WAIT_S = 120.0


def _tokens(text: str) -> list[int]:
    return list(text.encode("utf-8"))


def _datum(prompt: str, completion: str) -> types.Datum:
    tokens = _tokens(f"{prompt} -> {completion}\n")
    prefix = len(_tokens(f"{prompt} -> "))
    weights = [0.0] * (prefix - 1) + [1.0] * (len(tokens) - prefix)
    return types.Datum(
        model_input=types.ModelInput.from_ints(tokens[:-1]),
        loss_fn_inputs={
            "target_tokens": types.TensorData.from_numpy(np.array(tokens[1:], dtype=np.int64)),
            "weights": types.TensorData.from_numpy(np.array(weights, dtype=np.float32)),
        },
    )


def run_smoke(steps: int = 30, base_model: str = "tiny-byte-lm") -> int:
    """Train a LoRA on a few pig-latin pairs and sample from it; returns an exit code."""
    started = time.monotonic()
    data = [_datum(p, c) for p, c in PAIRS]
    target_tokens = float(sum(d.loss_fn_inputs["weights"].to_numpy().sum() for d in data))
    with tx.ServiceClient() as service:
        trainer = service.create_lora_training_client(base_model, rank=16, seed=0).result(_WAIT_S)
        print(f"model {trainer.model_id} on {base_model}")
        adam = tx.AdamParams(learning_rate=2e-2)
        pending = None
        first_loss = last_loss = 0.0
        for step in range(steps):
            # One step ahead: submit this step before reading the previous step's result.
            current = (trainer.forward_backward(data, "cross_entropy"), trainer.optim_step(adam))
            if pending is not None:
                last_loss = pending[0].result(_WAIT_S).metrics["loss:sum"] / target_tokens
                first_loss = first_loss or last_loss
                if (step - 1) % 5 == 0:
                    print(f"step {step - 1:3d}  loss/token {last_loss:.3f}")
            pending = current
        assert pending is not None
        last_loss = pending[0].result(_WAIT_S).metrics["loss:sum"] / target_tokens
        pending[1].result(_WAIT_S)
        print(f"step {steps - 1:3d}  loss/token {last_loss:.3f}")
        path = trainer.save_weights_for_sampler("demo-final").result(_WAIT_S).path
        sampler = service.create_sampling_client(model_path=path).result(_WAIT_S)
        params = tx.SamplingParams(max_tokens=10, temperature=0.0, stop=["\n"])
        for prompt, want in PAIRS[:2]:
            out = sampler.sample(tx.ModelInput.from_ints(_tokens(f"{prompt} -> ")), 1, params)
            tokens = out.result(_WAIT_S).sequences[0].tokens
            got = bytes(t for t in tokens if t < 256).decode("utf-8", "replace")
            print(f"sample  {prompt} -> {got.strip()!r}  (taught {want!r})")
    print(f"checkpoint {path}")
    print(f"loss/token {first_loss:.3f} -> {last_loss:.3f} in {steps} steps, "
          f"{time.monotonic() - started:.1f} s")
    if not last_loss < first_loss:
        print("FAILED: the loss did not fall")
        return 1
    return 0
