"""The RL demo: sample, score with a dense reward, train with importance_sampling.

Per step, `batch_size` prompts x `samples_per_prompt` samples from a fresh sampler of the
current weights. The reward is `char_match` (the fraction of the pig latin target matched),
advantages are centred per prompt group (and scaled by its spread; a group whose samples all
scored the same teaches nothing and is left out), and the loss is importance_sampling with the
sampling logprobs. Checkpoints are saved every `checkpoint_every` steps and at the end;
`--resume` continues from the last RL checkpoint (no warm-up again).
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from typing import Any, TextIO

import numpy as np

import tinkex_actors as tx
from tinkex_actors import types
from tinkex_actors.demo import data as demo_data
from tinkex_actors.demo.common import (
    EXIT_INTERRUPTED,
    EXIT_NOT_LEARNING,
    WAIT_S,
    WARMUP_LEARNING_RATE,
    CheckpointLog,
    DemoOptions,
    batch_of,
    open_service,
    open_trainer,
    stop_on_sigint,
    with_base_model,
)
from tinkex_actors.demo.console import Console, printable
from tinkex_actors.reporting.metrics import REWARD, MetricsLog
from tinkex_actors.reporting.progress import StepProgress

__all__ = ["run_rl"]

MODE = "rl"


def _rl_datum(prompt: list[int], sequence: types.SampledSequence, advantage: float) -> types.Datum:
    """An importance_sampling Datum: the sampled tokens, their sampling logprobs, advantages."""
    sampled = [int(t) for t in sequence.tokens]
    logprobs = list(sequence.logprobs or [0.0] * len(sampled))
    tokens = prompt + sampled
    n_prompt = len(prompt) - 1
    return types.Datum(
        model_input=types.ModelInput.from_ints(tokens[:-1]),
        loss_fn_inputs={
            "target_tokens": types.TensorData.from_numpy(np.array(tokens[1:], dtype=np.int64)),
            "logprobs": types.TensorData.from_numpy(
                np.array([0.0] * n_prompt + logprobs, dtype=np.float32)
            ),
            "advantages": types.TensorData.from_numpy(
                np.array([0.0] * n_prompt + [advantage] * len(sampled), dtype=np.float32)
            ),
        },
    )


def _warm_up(
    trainer: tx.TrainingClient,
    pairs: list[tuple[str, str]],
    options: DemoOptions,
    tokenizer: Any,
    out: Console,
) -> None:
    """A few supervised steps first: RL needs a policy whose samples are sometimes right.

    From random weights every sample is noise, the reward's only signal is stray characters in
    the right places, and RL learns to produce exactly those (reward hacking, in miniature).
    """
    if options.rl_warmup_steps == 0:
        return
    adam = tx.AdamParams(learning_rate=WARMUP_LEARNING_RATE)
    pending: list[tx.Future[types.ForwardBackwardOutput]] = []
    for step in range(options.rl_warmup_steps):
        batch = batch_of(pairs, options.seed + 1, step, options.batch_size or 32)
        data = [demo_data.supervised_datum(w, t, tokenizer) for w, t in batch]
        pending.append(trainer.forward_backward(data, "cross_entropy"))
        trainer.optim_step(adam)
    last = pending[-1].result(WAIT_S)
    tokens = float(sum(d.loss_fn_inputs["weights"].to_numpy().sum() for d in data))
    out.say(
        f"warm-up: {options.rl_warmup_steps} supervised steps, loss/token "
        f"{last.metrics['loss:sum'] / tokens:.3f}"
    )


def _rl_step(
    trainer: tx.TrainingClient,
    pairs: list[tuple[str, str]],
    options: DemoOptions,
    tokenizer: Any,
    step: int,
    adam: types.AdamParams,
) -> tuple[float, int, int, str]:
    """One RL step; (mean reward, datums trained on, tokens, an example completion)."""
    assert options.batch_size is not None
    # A new sampler of the current weights every step: on-policy samples.
    sampler = trainer.save_weights_and_get_sampling_client(f"rl-{step:04d}").result(WAIT_S)
    batch = batch_of(pairs, options.seed, step, options.batch_size)
    params = tx.SamplingParams(
        max_tokens=10, temperature=1.0, stop=["\n"], seed=options.seed * 100_003 + step
    )
    prompts = [demo_data.prompt_tokens(w, tokenizer) for w, _ in batch]
    futures = [
        sampler.sample(tx.ModelInput.from_ints(p), options.samples_per_prompt, params)
        for p in prompts
    ]
    data: list[types.Datum] = []
    rewards: list[float] = []
    example = ""
    for (word, target), prompt, future in zip(batch, prompts, futures, strict=True):
        sequences = future.result(WAIT_S).sequences
        texts = [demo_data.decode_completion(s.tokens, tokenizer) for s in sequences]
        group = [demo_data.char_match(text, target) for text in texts]
        example = example or f"{word}{demo_data.SEPARATOR}{printable(texts[0])!r}"
        rewards.extend(group)
        mean, spread = float(np.mean(group)), float(np.std(group))
        for sequence, reward in zip(sequences, group, strict=True):
            if spread > 0 and len(sequence.tokens) > 0:
                advantage = (reward - mean) / (spread + 1e-6)
                data.append(_rl_datum(prompt, sequence, advantage))
    if data:
        fb = trainer.forward_backward(data, "importance_sampling")
        opt = trainer.optim_step(adam)
        fb.result(WAIT_S)
        opt.result(WAIT_S)
    tokens = sum(d.model_input.length for d in data)
    return float(np.mean(rewards)), len(data), tokens, example


def run_rl(
    options: DemoOptions,
    stdout: TextIO | None = None,
    stop: threading.Event | None = None,
    report: dict[str, Any] | None = None,
) -> int:
    """Run the RL demo; prints the mean reward per step; exit 1 when it did not rise."""
    options = dataclasses.replace(options, rl=True).resolved()
    assert options.steps is not None and options.batch_size is not None
    assert options.learning_rate is not None
    steps, lr = options.steps, options.learning_rate
    stream = stdout if stdout is not None else sys.stdout
    out = Console(stream)
    stop = stop if stop is not None else threading.Event()
    log = CheckpointLog(options.output_dir)
    resume_from = log.last(MODE) if options.resume else None
    if options.resume and resume_from is None:
        out.say(f"no RL checkpoint recorded in {log.path}: starting from the base model")
    first_step = int(resume_from.get("step", 0)) if resume_from else 0
    if resume_from is not None:
        options = dataclasses.replace(
            options,
            base_model=resume_from.get("base_model", options.base_model),
            rank=resume_from.get("rank", options.rank),
        )
        if first_step >= steps:
            out.say(
                f"{resume_from['path']} is already at step {first_step} of {steps}: "
                f"pass --steps N with N > {first_step} to train further"
            )
            return 0
    pairs = demo_data.example_pairs(seed=options.seed)
    started = time.monotonic()
    rewards: list[float] = []
    saved: list[str] = []
    last_step = first_step
    with stop_on_sigint(stop), open_service(options) as (service, server_dir):
        options = with_base_model(options, service, out.say)
        assert options.base_model is not None
        trainer = open_trainer(service, options, resume_from)
        if resume_from is not None:
            out.say(f"resumed {resume_from['path']} at RL step {first_step}")
        model_id = trainer.model_id
        out.say(
            f"RL: model {model_id}  base {options.base_model}  {options.batch_size} prompts x "
            f"{options.samples_per_prompt} samples per step  lr {lr:g}"
        )
        adam = tx.AdamParams(learning_rate=lr)
        tokenizer = trainer.get_tokenizer()
        if resume_from is None:
            _warm_up(trainer, pairs, options, tokenizer, out)
        metrics = MetricsLog(options.output_dir, append=resume_from is not None)
        progress = StepProgress(stream, steps, first=first_step, description="RL",
                                metric="reward", plain_lines=False)
        with progress:
            out.say_to = progress
            try:
                for step in range(first_step, steps):
                    if stop.is_set():
                        break
                    step_started = time.monotonic()
                    reward, datums, tokens, example = _rl_step(
                        trainer, pairs, options, tokenizer, step, adam
                    )
                    rewards.append(reward)
                    last_step = step + 1
                    metrics.log(step, {
                        REWARD: reward,
                        "learning_rate": lr,
                        "num_datums": datums,
                        "num_tokens": tokens,
                        "progress": last_step / steps,
                        "time/total": time.monotonic() - started,
                    })
                    out.say(
                        f"step {last_step:3d}/{steps}  mean reward {reward:.3f}  "
                        f"{datums:3d} datums  {time.monotonic() - step_started:4.1f} s  "
                        f"e.g. {example}"
                    )
                    progress.advance(last_step, reward, tokens)
                    if last_step % options.checkpoint_every == 0 or last_step == steps:
                        future = trainer.save_state(f"demo-rl-step-{last_step:05d}")
                        saved.append(log.save(trainer, future, last_step, {"reward": reward},
                                              options, MODE))
            finally:
                out.say_to = None
        interrupted = stop.is_set() and last_step < steps
        if interrupted and last_step > first_step:
            future = trainer.save_state(f"demo-rl-step-{last_step:05d}")
            saved.append(log.save(trainer, future, last_step,
                                  {"reward": rewards[-1] if rewards else None}, options, MODE))
    facts: dict[str, Any] = report if report is not None else {}
    facts.update(
        mode=MODE,
        base_model=options.base_model,
        model_id=model_id,
        first_step=first_step,
        last_step=last_step,
        steps=len(rewards),
        mean_rewards=rewards,
        checkpoints=saved,
        metrics_path=str(metrics.path),
        interrupted=interrupted,
        seconds=time.monotonic() - started,
    )
    out.say("")
    out.say("summary")
    out.say(f"  steps        {first_step} -> {last_step}  ({len(rewards)} this run)")
    if rewards:
        out.say(f"  mean reward  {rewards[0]:.3f} -> {rewards[-1]:.3f}")
        facts.update(out.curve(options.output_dir, "mean reward"))
    out.where(options.output_dir, model_id, server_dir, saved)
    out.say(f"  time         {time.monotonic() - started:.1f} s")
    if interrupted:
        out.say(f"interrupted at step {last_step}: continue with: tinkex-actors demo --rl "
                f"--resume --output-dir {options.output_dir}")
        return EXIT_INTERRUPTED
    if len(rewards) < 2:
        out.say("one step is too few to tell whether the reward rises: pass --steps N with N >= 2")
        return 0
    if not max(rewards[len(rewards) // 2 :]) > rewards[0]:
        out.say("FAILED: the reward did not rise")
        return EXIT_NOT_LEARNING
    return 0
