"""The supervised demo: cross_entropy on pig latin pairs, pipelined one step ahead."""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from collections import deque
from typing import Any, TextIO

import tinkex_actors as tx
from tinkex_actors import types
from tinkex_actors.demo import data as demo_data
from tinkex_actors.demo.common import (
    EXIT_INTERRUPTED,
    EXIT_NOT_LEARNING,
    REFRESH_S,
    SAMPLE_WORDS,
    WAIT_S,
    CheckpointLog,
    DemoOptions,
    QueueWatch,
    batch_of,
    greedy,
    open_service,
    open_trainer,
    stop_on_sigint,
    with_base_model,
)
from tinkex_actors.demo.console import Console
from tinkex_actors.reporting.metrics import LOSS, MetricsLog
from tinkex_actors.reporting.progress import StepProgress

__all__ = ["run_supervised"]

MODE = "supervised"


@dataclasses.dataclass
class _Step:
    step: int
    forward_backward: tx.Future[types.ForwardBackwardOutput]
    optim: tx.Future[types.OptimStepResponse]
    target_tokens: float
    tokens: int
    sequences: int
    checkpoint: tx.Future[Any] | None = None


def run_supervised(
    options: DemoOptions,
    stdout: TextIO | None = None,
    stop: threading.Event | None = None,
    report: dict[str, Any] | None = None,
) -> int:
    """Run the supervised demo; returns the exit code (see `tinkex_actors.demo.run`)."""
    options = options.resolved()
    assert options.steps is not None and options.batch_size is not None
    assert options.learning_rate is not None
    steps, batch_size, lr = options.steps, options.batch_size, options.learning_rate
    stream = stdout if stdout is not None else sys.stdout
    out = Console(stream)
    facts: dict[str, Any] = report if report is not None else {}
    facts.update(mode=MODE, checkpoints=[], losses=[])
    stop = stop if stop is not None else threading.Event()
    log = CheckpointLog(options.output_dir)
    resume_from = log.last(MODE) if options.resume else None
    if options.resume and resume_from is None:
        out.say(f"no checkpoint recorded in {log.path}: starting from the base model")
    first_step = 0
    if resume_from is not None:
        # The checkpoint decides the model: its base model and rank, whatever the flags say.
        options = dataclasses.replace(
            options,
            base_model=resume_from.get("base_model", options.base_model),
            rank=resume_from.get("rank", options.rank),
        )
        first_step = int(resume_from.get("step", 0))
        if first_step >= steps:
            out.say(
                f"{resume_from['path']} is already at step {first_step} of {steps}: "
                f"pass --steps N with N > {first_step} to train further"
            )
            facts.update(first_step=first_step, last_step=first_step, interrupted=False)
            return 0
    pairs = demo_data.example_pairs(seed=options.seed)
    lookup = dict(pairs)
    shown = [w for w, _ in pairs[:SAMPLE_WORDS]]
    started = time.monotonic()
    with stop_on_sigint(stop), open_service(options) as (service, server_dir):
        options = with_base_model(options, service, out.say)
        assert options.base_model is not None
        trainer = open_trainer(service, options, resume_from)
        if resume_from is not None:
            out.say(f"resumed {resume_from['path']} at step {first_step} (with optimizer state)")
        facts.update(model_id=trainer.model_id, base_model=options.base_model)
        out.say(
            f"model {trainer.model_id}  base {options.base_model}  rank {options.rank}  "
            f"{len(pairs)} pig latin pairs  batch {batch_size}  "
            f"lr {lr:g}"
        )
        tokenizer = trainer.get_tokenizer()
        before_sampler = trainer.save_weights_and_get_sampling_client("demo-before").result(WAIT_S)
        before = out.samples(
            "before training:", shown, greedy(before_sampler, shown, tokenizer), lookup
        )
        adam = tx.AdamParams(learning_rate=lr)
        metrics = MetricsLog(options.output_dir, append=resume_from is not None)
        queue = QueueWatch(trainer.model_id)
        losses: list[float] = []
        saved: list[str] = []
        pending: deque[_Step] = deque()
        last_step = first_step
        progress = StepProgress(stream, steps, first=first_step, metric="loss")

        def wait(future: tx.Future[Any]) -> Any:
            # Wake up now and then to show a paused queue while a step waits for it.
            deadline = time.monotonic() + WAIT_S
            while True:
                try:
                    return future.result(min(REFRESH_S, max(deadline - time.monotonic(), 0.0)))
                except tx.FutureTimeoutError:
                    if time.monotonic() >= deadline:
                        raise
                    progress.status(queue.describe())

        def finish(item: _Step) -> None:
            nonlocal last_step
            result = wait(item.forward_backward)
            wait(item.optim)
            loss = result.metrics["loss:sum"] / item.target_tokens
            losses.append(loss)
            last_step = item.step + 1
            metrics.log(
                item.step,
                {
                    LOSS: loss,
                    "learning_rate": lr,
                    "num_sequences": item.sequences,
                    "num_tokens": item.tokens,
                    "progress": last_step / steps,
                    "time/total": time.monotonic() - started,
                },
            )
            progress.advance(last_step, loss, item.tokens)
            if item.checkpoint is not None:
                saved.append(log.save(trainer, item.checkpoint, last_step, {"loss": loss},
                                      options, MODE))

        try:
            with progress:
                out.say_to = progress
                for step in range(first_step, steps):
                    if stop.is_set():
                        break
                    batch = batch_of(pairs, options.seed, step, batch_size)
                    data = [demo_data.supervised_datum(w, t, tokenizer) for w, t in batch]
                    item = _Step(
                        step,
                        trainer.forward_backward(data, "cross_entropy"),
                        trainer.optim_step(adam),
                        float(sum(d.loss_fn_inputs["weights"].to_numpy().sum() for d in data)),
                        sum(d.model_input.length for d in data),
                        len(data),
                    )
                    if (step + 1) % options.checkpoint_every == 0 or step + 1 == steps:
                        # Queued right behind this step's optim_step: it holds exactly these
                        # weights.
                        item.checkpoint = trainer.save_state(f"demo-step-{step + 1:05d}")
                    pending.append(item)
                    # One step ahead: the next step is already queued when this one is read.
                    if len(pending) > 1:
                        finish(pending.popleft())
                while pending:
                    finish(pending.popleft())
        finally:
            out.say_to = None
            queue.close()
        interrupted = stop.is_set() and last_step < steps
        if interrupted and (not saved or not saved[-1].endswith(f"{last_step:05d}")):
            future = trainer.save_state(f"demo-step-{last_step:05d}")
            saved.append(log.save(trainer, future, last_step,
                                  {"loss": losses[-1] if losses else None}, options, MODE))
        facts.update(
            first_step=first_step,
            last_step=last_step,
            first_loss=losses[0] if losses else None,
            final_loss=losses[-1] if losses else None,
            losses=losses,
            checkpoints=saved,
            match_before=before,
            metrics_path=str(metrics.path),
        )
        if interrupted:
            facts.update(interrupted=True, seconds=time.monotonic() - started)
            out.say(f"interrupted at step {last_step}: saved {saved[-1] if saved else 'nothing'}")
            out.say(f"continue with: tinkex-actors demo --resume --output-dir {options.output_dir}")
            if losses:
                facts.update(out.curve(options.output_dir, "loss/token"))
            return EXIT_INTERRUPTED
        after_sampler = trainer.save_weights_and_get_sampling_client("demo-after").result(WAIT_S)
        after = out.samples("after training:", shown, greedy(after_sampler, shown, tokenizer),
                            lookup)
        model_id = trainer.model_id
    facts.update(interrupted=False, match_after=after, seconds=time.monotonic() - started)
    out.say("")
    out.say("summary")
    out.say(f"  steps        {first_step} -> {last_step}  ({len(losses)} this run)")
    if losses:
        out.say(f"  loss/token   {losses[0]:.3f} -> {losses[-1]:.3f}")
    out.say(f"  match        {before:.0%} -> {after:.0%} of the target characters")
    if losses:
        facts.update(out.curve(options.output_dir, "loss/token"))
    out.where(options.output_dir, model_id, server_dir, saved)
    out.say(f"  time         {time.monotonic() - started:.1f} s")
    return _verdict(out, losses)


def _verdict(out: Console, losses: list[float]) -> int:
    if len(losses) < 2:
        out.say("one step is too few to tell whether the loss falls: pass --steps N with N >= 2")
        return 0
    if not losses[-1] < losses[0]:
        out.say("FAILED: the loss did not fall")
        return EXIT_NOT_LEARNING
    return 0
