"""Speed of the embedded server's tiny model, side by side with same-process baselines.

Run: ``python benchmarks/model_bench.py [--models tiny-byte-lm small-byte-lm] [--repeats 3]``

For each batch shape it prints, in milliseconds (best of ``--repeats``):
- ``fwd_bwd``: ``LoraModel.forward_backward`` of the whole batch (cross_entropy);
- ``forward``: the same without the backward pass;
- ``per_datum``: baseline, one ``forward_backward`` call per datum (no batching);
- ``gemm_floor``: baseline, the forward's three matrix products alone (MLP in, MLP
  out, unembedding) on random arrays of the same shapes: BLAS time before any logic.
Then ``optim_step`` time and sampling throughput (tokens/s) with a forward over the
same number of positions as the baseline.

BLAS threads: on a small machine shared with other work, a multi-threaded BLAS can
stall waiting for a descheduled thread; compare with ``OPENBLAS_NUM_THREADS=1``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from tinkex_actors.local.model import BASE_MODELS, LoraModel, ModelDatum

SHAPES = [(8, 128), (64, 2048)]


def best_ms(fn: Callable[[], object], repeats: int) -> float:
    """Run ``fn`` once to warm up, then return the best of ``repeats`` timings in ms."""
    fn()
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        timings.append(time.perf_counter() - start)
    return min(timings) * 1000.0


def gemm_floor(model: LoraModel, positions: int, repeats: int) -> float:
    """Time the forward pass's matrix products alone on random float32 arrays."""
    spec = model.spec
    rng = np.random.default_rng(0)
    e, c, h, v = spec.embed_dim, spec.context_length, spec.hidden_dim, spec.vocab_size
    chunk = min(positions, 256)  # the model's own chunk size
    flat = rng.standard_normal((chunk, c * e), dtype=np.float32)
    w_in = rng.standard_normal((c * e, h), dtype=np.float32)
    w_out = rng.standard_normal((h, e), dtype=np.float32)
    w_unembed = rng.standard_normal((e, v), dtype=np.float32)

    def run() -> None:
        for _ in range(max(1, positions // chunk)):
            hidden = flat @ w_in
            r = hidden @ w_out
            _ = r @ w_unembed

    return best_ms(run, repeats)


def batch(model: LoraModel, count: int, length: int) -> list[ModelDatum]:
    """Random datums of ``length`` tokens."""
    rng = np.random.default_rng(1)
    vocab = model.spec.vocab_size
    return [
        ModelDatum(
            rng.integers(0, vocab, length), {"target_tokens": rng.integers(0, vocab, length)}
        )
        for _ in range(count)
    ]


def bench_model(name: str, repeats: int) -> None:
    """Print the figures of one base model."""
    model = LoraModel(name, rank=8, seed=0)
    print(
        f"\n{name}: embed {model.spec.embed_dim}, window {model.spec.context_length}, "
        f"hidden {model.spec.hidden_dim}, rank 8, all layers adapted"
    )
    print(
        f"{'batch':>10} {'fwd_bwd':>10} {'forward':>10} {'per_datum':>10} {'gemm_floor':>10} "
        f"{'tokens/s':>12}"
    )
    for count, length in SHAPES:
        data = batch(model, count, length)
        reps = repeats if count * length <= 8192 else max(1, repeats // 2 + 1)
        fwd_bwd = best_ms(lambda d=data: model.forward_backward(d, "cross_entropy"), reps)
        forward = best_ms(lambda d=data: model.forward(d, "cross_entropy"), reps)

        def per_datum(d: list[ModelDatum] = data) -> None:
            for datum in d:
                model.forward_backward([datum], "cross_entropy")

        unbatched = best_ms(per_datum, reps)
        floor = gemm_floor(model, count * length, reps)
        rate = count * length / (fwd_bwd / 1000.0)
        print(
            f"{count:>4}x{length:<5} {fwd_bwd:>10.2f} {forward:>10.2f} {unbatched:>10.2f} "
            f"{floor:>10.2f} {rate:>12,.0f}"
        )
    model.zero_grad()
    step = best_ms(lambda: model.optim_step(learning_rate=1e-4), repeats)
    print(f"optim_step: {step:.3f} ms")
    prompt = list(range(65, 97))
    for samples in (1, 16):
        sample_ms = best_ms(
            lambda n=samples: model.sample(prompt, max_tokens=128, seed=0, stop=[], num_samples=n),
            repeats,
        )
        positions = [
            ModelDatum(
                np.arange(128 * samples) % 256, {"target_tokens": np.zeros(128 * samples, np.int64)}
            )
        ]
        baseline = best_ms(lambda p=positions: model.forward(p, "cross_entropy"), repeats)
        print(
            f"sample {samples:>2}x128 tokens: {sample_ms:8.2f} ms "
            f"({128 * samples / sample_ms * 1000:,.0f} tokens/s); "
            f"baseline forward over {128 * samples} positions: {baseline:.2f} ms"
        )


def main() -> None:
    """Parse arguments and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny-byte-lm"], choices=list(BASE_MODELS))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    for name in args.models:
        bench_model(name, args.repeats)


if __name__ == "__main__":
    main()
