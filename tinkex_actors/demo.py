"""The main job: fine-tune a LoRA to speak pig latin, end to end, in about a minute.

`tinkex-actors demo` runs it on the embedded server (started by the ServiceClient when neither
`TINKER_API_KEY` nor `TINKER_BASE_URL` is set) or on the service they name. It shows what a
Tinker training loop looks like:

- forward_backward and optim_step of a step are submitted back to back, one step ahead of the
  results being read (pipelined), so the server never waits for the client;
- a live progress line (step, loss per completion token, tokens/s, queue state when paused);
- a `save_state` checkpoint every N steps, each recorded in `<out>/checkpoints.jsonl`;
  `--resume` continues from the last one with its optimizer state;
- greedy samples before and after training, so the change is visible;
- Ctrl-C stops submitting, saves a checkpoint and exits with 130.

`tinkex-actors demo --rl` is the RL-shaped variant: after a short supervised warm-up, each step
samples a fresh sampler of the current weights, scores the samples with a dense reward and
trains on them with the importance_sampling loss (see `run_rl_demo`).

Exit codes: 0 success, 1 the loss did not fall (or the reward did not rise), 130 interrupted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import random
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import numpy as np

import tinkex_actors as tx
from tinkex_actors import demo_data, telemetry, types

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_NOT_LEARNING",
    "CheckpointLog",
    "DemoOptions",
    "ProgressLine",
    "run_demo",
    "run_rl_demo",
]

EXIT_NOT_LEARNING = 1
EXIT_INTERRUPTED = 130
WAIT_S = 600.0
"""The longest the demo waits for any one answer before giving up with an error."""
REFRESH_S = 0.5
"""How often the progress line is refreshed while a step waits (to show queue pauses)."""
SAMPLE_WORDS = 4
"""How many words are shown before and after training."""
EMBEDDED_MODEL = "small-byte-lm"
"""The embedded base model of the supervised demo: its 16-byte window sees a whole example."""
EMBEDDED_RL_MODEL = "tiny-byte-lm"
"""The embedded base model of the RL demo: the fastest to sample 256 completions a step."""
EMBEDDED_KEY = "tml-tinkex-demo-embedded"
"""The key given to the demo's own embedded server (which accepts any well-formed key)."""
SERVICE_MODEL = "Qwen/Qwen3-8B"
"""The base model on the real service when `--base-model` is not given."""
WARMUP_LEARNING_RATE = 2e-2
"""The learning rate of the RL demo's supervised warm-up."""


@dataclasses.dataclass(frozen=True)
class DemoOptions:
    """The demo's settings; `None` fields take the mode's default (supervised or RL)."""

    steps: int | None = None
    rank: int = 16
    learning_rate: float | None = None
    batch_size: int | None = None
    base_model: str | None = None
    output_dir: Path = Path("tinkex-demo-out")
    checkpoint_every: int = 50
    resume: bool = False
    seed: int = 0
    rl: bool = False
    samples_per_prompt: int = 8
    rl_warmup_steps: int = 10
    base_url: str | None = None
    api_key: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.rl_warmup_steps, int) or self.rl_warmup_steps < 0:
            raise ValueError(
                f"rl_warmup_steps={self.rl_warmup_steps!r} must be an integer >= 0 "
                "(pass --rl-warmup-steps N; 0 starts RL from the base model)"
            )
        for name in ("steps", "batch_size", "checkpoint_every", "rank", "samples_per_prompt"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                flag = "--" + name.replace("_", "-")
                raise ValueError(f"{name}={value!r} must be an integer >= 1 (pass {flag} N)")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ValueError(
                f"learning_rate={self.learning_rate!r} must be > 0 (e.g. --learning-rate 1e-2)"
            )
        object.__setattr__(self, "output_dir", Path(self.output_dir))

    def embedded(self, environ: Mapping[str, str] | None = None) -> bool:
        """True when the demo will start the embedded server (no URL or key anywhere)."""
        env = os.environ if environ is None else environ
        named = (self.base_url, self.api_key, env.get("TINKER_BASE_URL"), env.get("TINKER_API_KEY"))
        return not any(named)

    def resolved(self, environ: Mapping[str, str] | None = None) -> DemoOptions:
        """These options with the mode's defaults filled in."""
        defaults: dict[str, Any] = (
            {"steps": 20, "learning_rate": 5e-3, "batch_size": 32}
            if self.rl
            else {"steps": 200, "learning_rate": 1e-2, "batch_size": 32}
        )
        if self.embedded(environ):
            defaults["base_model"] = EMBEDDED_RL_MODEL if self.rl else EMBEDDED_MODEL
        else:
            defaults["base_model"] = SERVICE_MODEL
        chosen = {k: getattr(self, k) or v for k, v in defaults.items()}
        return dataclasses.replace(self, **chosen)


# -- presentation ---------------------------------------------------------------------------


class ProgressLine:
    """One live status line on a terminal; plain lines (one per update) anywhere else."""

    def __init__(self, stream: TextIO, tty: bool | None = None) -> None:
        self._stream = stream
        self._tty = stream.isatty() if tty is None else tty
        self._width = 0

    def update(self, text: str) -> None:
        """Show `text` as the current status."""
        if self._tty:
            pad = max(0, self._width - len(text))
            self._stream.write("\r" + text + " " * pad)
            self._width = len(text)
        else:
            self._stream.write(text + "\n")
        self._stream.flush()

    def say(self, text: str) -> None:
        """Print a permanent line (the status line, if any, is ended first)."""
        self.end()
        self._stream.write(text + "\n")
        self._stream.flush()

    def end(self) -> None:
        """End the live line so the next output starts on a fresh line."""
        if self._tty and self._width:
            self._stream.write("\n")
            self._stream.flush()
        self._width = 0


class QueueWatch:
    """The latest queue state of one model, fed by the telemetry bus (never blocks it)."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.state = "active"
        self.reason: str | None = None
        self._attachment = telemetry.attach(telemetry.EVENT_QUEUE_STATE_CHANGE, self._on_event)

    def _on_event(self, event: telemetry.TelemetryEvent) -> None:
        if event.metadata.get("owner") == self.owner:
            self.state = str(event.metadata.get("state", "unknown"))
            self.reason = event.metadata.get("reason")

    def describe(self) -> str:
        """'' while active; else the state (and reason) for the progress line."""
        if self.state == "active":
            return ""
        return f"  queue {self.state}" + (f" ({self.reason})" if self.reason else "")

    def close(self) -> None:
        """Stop listening."""
        telemetry.detach(self._attachment)


# -- checkpoints ------------------------------------------------------------------------------


class CheckpointLog:
    """`checkpoints.jsonl`: one JSON object per saved checkpoint, appended as each lands."""

    def __init__(self, output_dir: Path) -> None:
        self.path = Path(output_dir) / "checkpoints.jsonl"

    def record(self, entry: dict[str, Any]) -> None:
        """Append one entry and make it durable before returning."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(entry, sort_keys=True) + "\n").encode("utf-8")
        with self.path.open("ab+") as f:
            # After a torn write (a crash mid-line), start on a fresh line so this one parses.
            if f.seek(0, os.SEEK_END) > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    line = b"\n" + line
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def entries(self) -> list[dict[str, Any]]:
        """Every recorded entry, oldest first; a torn last line (a crash mid-write) is skipped."""
        if not self.path.exists():
            return []
        found = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                entry = json.loads(line)
                if isinstance(entry, dict) and isinstance(entry.get("path"), str):
                    found.append(entry)
        return found

    def last(self) -> dict[str, Any] | None:
        """The newest entry, or None."""
        entries = self.entries()
        return entries[-1] if entries else None


# -- Ctrl-C ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _stop_on_sigint(stop: threading.Event) -> Iterator[None]:
    """The first Ctrl-C sets `stop` (finish cleanly); a second one interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(_signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


# -- shared helpers ---------------------------------------------------------------------------


@contextlib.contextmanager
def _service(options: DemoOptions) -> Iterator[tx.ServiceClient]:
    """A ServiceClient on the named service, or on an embedded server of our own.

    The embedded server keeps its data in `<output_dir>/server`, so the checkpoints recorded
    in checkpoints.jsonl are still there when the demo is re-run with `--resume`.
    """
    if not options.embedded():
        with tx.ServiceClient(api_key=options.api_key, base_url=options.base_url) as service:
            yield service
        return
    from tinkex_actors.local import LocalServer

    with (
        LocalServer(data_dir=options.output_dir / "server") as server,
        tx.ServiceClient(api_key=server.api_key, base_url=server.url) as service,
    ):
        yield service


def _greedy(sampler: tx.SamplingClient, words: list[str], tokenizer: Any) -> list[str]:
    params = tx.SamplingParams(max_tokens=12, temperature=0.0, stop=["\n"])
    futures = [
        sampler.sample(tx.ModelInput.from_ints(demo_data.prompt_tokens(w, tokenizer)), 1, params)
        for w in words
    ]
    return [
        demo_data.decode_completion(f.result(WAIT_S).sequences[0].tokens, tokenizer)
        for f in futures
    ]


def _show_samples(
    out: ProgressLine, title: str, words: list[str], got: list[str], pairs: dict[str, str]
) -> float:
    out.say(title)
    scores = []
    for word, completion in zip(words, got, strict=True):
        score = demo_data.char_match(completion, pairs[word])
        scores.append(score)
        shown = f"{_printable(completion)!r:<16}"
        out.say(f"  {word}{demo_data.SEPARATOR}{shown} want {pairs[word]!r}  {score:.0%}")
    return float(np.mean(scores))


def _printable(text: str) -> str:
    # An untrained model emits arbitrary bytes: show them as dots, not escapes or U+FFFD.
    return "".join(c if c.isprintable() and c != "\ufffd" else "\u00b7" for c in text)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclasses.dataclass
class _Step:
    step: int
    forward_backward: tx.Future[types.ForwardBackwardOutput]
    optim: tx.Future[types.OptimStepResponse]
    target_tokens: float
    tokens: int
    checkpoint: tx.Future[Any] | None = None


# -- supervised fine-tuning -------------------------------------------------------------------


def run_demo(
    options: DemoOptions,
    stdout: TextIO | None = None,
    stop: threading.Event | None = None,
    report: dict[str, Any] | None = None,
) -> int:
    """Run the supervised demo (or the RL demo when `options.rl`); returns the exit code.

    `stop` ends training early as Ctrl-C does (a checkpoint is saved, the code is 130).
    `report`, when given, is filled with the run's figures (what `demo --json` prints).
    """
    options = options.resolved()
    if options.rl:
        return run_rl_demo(options, stdout, stop, report)
    facts: dict[str, Any] = report if report is not None else {}
    facts.update(mode="supervised", base_model=options.base_model, checkpoints=[])
    out = ProgressLine(stdout if stdout is not None else sys.stdout)
    stop = stop if stop is not None else threading.Event()
    log = CheckpointLog(options.output_dir)
    resume_from = log.last() if options.resume else None
    if resume_from is not None:
        # The checkpoint decides the model: its base model and rank, whatever the flags say.
        options = dataclasses.replace(
            options,
            base_model=resume_from.get("base_model", options.base_model),
            rank=resume_from.get("rank", options.rank),
        )
    assert options.steps is not None and options.batch_size is not None
    assert options.learning_rate is not None and options.base_model is not None
    pairs = demo_data.example_pairs(seed=options.seed)
    lookup = dict(pairs)
    shown = [w for w, _ in pairs[:SAMPLE_WORDS]]
    started = time.monotonic()
    first_step = 0
    if options.resume and resume_from is None:
        out.say(f"no checkpoint recorded in {log.path}: starting from the base model")
    if resume_from is not None:
        first_step = int(resume_from.get("step", 0))
        if first_step >= options.steps:
            out.say(
                f"{resume_from['path']} is already at step {first_step} of {options.steps}: "
                f"pass --steps N with N > {first_step} to train further"
            )
            return 0
    with _stop_on_sigint(stop), _service(options) as service:
        if resume_from is not None:
            trainer = service.create_training_client_from_state_with_optimizer(
                resume_from["path"]
            ).result(WAIT_S)
            out.say(f"resumed {resume_from['path']} at step {first_step} (with optimizer state)")
        else:
            trainer = service.create_lora_training_client(
                options.base_model, rank=options.rank, seed=options.seed
            ).result(WAIT_S)
        out.say(
            f"model {trainer.model_id}  base {options.base_model}  rank {options.rank}  "
            f"{len(pairs)} pig latin pairs  batch {options.batch_size}  "
            f"lr {options.learning_rate:g}"
        )
        tokenizer = trainer.get_tokenizer()
        before_sampler = trainer.save_weights_and_get_sampling_client("demo-before").result(WAIT_S)
        before = _show_samples(
            out, "before training:", shown, _greedy(before_sampler, shown, tokenizer), lookup
        )
        adam = tx.AdamParams(learning_rate=options.learning_rate)
        queue = QueueWatch(trainer.model_id)
        losses: list[float] = []
        saved: list[str] = []
        pending: deque[_Step] = deque()
        tokens_done = 0
        train_started = time.monotonic()
        last_step = first_step

        def wait(future: tx.Future[Any], step: int) -> Any:
            # Wake up now and then to show a paused queue while a step waits for it.
            deadline = time.monotonic() + WAIT_S
            while True:
                try:
                    return future.result(min(REFRESH_S, max(deadline - time.monotonic(), 0.0)))
                except tx.FutureTimeoutError:
                    if time.monotonic() >= deadline:
                        raise
                    if queue.describe():
                        out.update(f"step {step + 1:4d}/{options.steps}  waiting{queue.describe()}")

        def finish(item: _Step) -> None:
            nonlocal tokens_done, last_step
            result = wait(item.forward_backward, item.step)
            wait(item.optim, item.step)
            loss = result.metrics["loss:sum"] / item.target_tokens
            losses.append(loss)
            tokens_done += item.tokens
            last_step = item.step + 1
            rate = tokens_done / max(time.monotonic() - train_started, 1e-9)
            out.update(
                f"step {item.step + 1:4d}/{options.steps}  loss {loss:7.4f}  "
                f"{rate:8.0f} tok/s{queue.describe()}"
            )
            if item.checkpoint is not None:
                path = item.checkpoint.result(WAIT_S).path
                _record(log, path, item.step + 1, loss, trainer.model_id, options)
                saved.append(path)

        try:
            for step in range(first_step, options.steps):
                if stop.is_set():
                    break
                batch = _batch(pairs, options.seed, step, options.batch_size)
                data = [demo_data.supervised_datum(w, t, tokenizer) for w, t in batch]
                item = _Step(
                    step,
                    trainer.forward_backward(data, "cross_entropy"),
                    trainer.optim_step(adam),
                    float(sum(d.loss_fn_inputs["weights"].to_numpy().sum() for d in data)),
                    sum(d.model_input.length for d in data),
                )
                if (step + 1) % options.checkpoint_every == 0 or step + 1 == options.steps:
                    # Queued right behind this step's optim_step: it holds exactly these weights.
                    item.checkpoint = trainer.save_state(f"demo-step-{step + 1:05d}")
                pending.append(item)
                # One step ahead: the next step is already queued when this one is read.
                if len(pending) > 1:
                    finish(pending.popleft())
            while pending:
                finish(pending.popleft())
            interrupted = stop.is_set() and last_step < options.steps
            if interrupted and (not saved or not saved[-1].endswith(f"{last_step:05d}")):
                path = trainer.save_state(f"demo-step-{last_step:05d}").result(WAIT_S).path
                _record(log, path, last_step, losses[-1] if losses else None, trainer.model_id,
                        options)
                saved.append(path)
        finally:
            queue.close()
            out.end()
        facts.update(
            first_step=first_step,
            last_step=last_step,
            first_loss=losses[0] if losses else None,
            final_loss=losses[-1] if losses else None,
            checkpoints=saved,
            match_before=before,
        )
        if stop.is_set() and last_step < options.steps:
            facts.update(interrupted=True, seconds=time.monotonic() - started)
            out.say(f"interrupted at step {last_step}: saved {saved[-1] if saved else 'nothing'}")
            out.say(f"continue with: tinkex-actors demo --resume --output-dir {options.output_dir}")
            return EXIT_INTERRUPTED
        after_sampler = trainer.save_weights_and_get_sampling_client("demo-after").result(WAIT_S)
        got = _greedy(after_sampler, shown, tokenizer)
        after = _show_samples(out, "after training:", shown, got, lookup)
    facts.update(interrupted=False, match_after=after, seconds=time.monotonic() - started)
    return _summary(out, options, first_step, last_step, losses, saved, before, after, started)


def _batch(
    pairs: list[tuple[str, str]], seed: int, step: int, size: int
) -> list[tuple[str, str]]:
    # A batch depends only on (seed, step): a resumed run sees the batches it would have seen.
    rng = random.Random(seed * 1_000_003 + step)
    return [pairs[rng.randrange(len(pairs))] for _ in range(size)]


def _record(
    log: CheckpointLog,
    path: str,
    step: int,
    loss: float | None,
    model_id: str,
    options: DemoOptions,
) -> None:
    log.record(
        {
            "path": path,
            "step": step,
            "loss": loss,
            "model_id": model_id,
            "base_model": options.base_model,
            "rank": options.rank,
            "time": _now(),
        }
    )


def _summary(
    out: ProgressLine,
    options: DemoOptions,
    first_step: int,
    last_step: int,
    losses: list[float],
    saved: list[str],
    before: float,
    after: float,
    started: float,
) -> int:
    out.say("")
    out.say("summary")
    out.say(f"  steps        {first_step} -> {last_step}  ({len(losses)} this run)")
    if losses:
        out.say(f"  loss/token   {losses[0]:.3f} -> {losses[-1]:.3f}")
    out.say(f"  match        {before:.0%} -> {after:.0%} of the target characters")
    for path in saved:
        out.say(f"  checkpoint   {path}")
    out.say(f"  recorded in  {options.output_dir / 'checkpoints.jsonl'}")
    out.say(f"  time         {time.monotonic() - started:.1f} s")
    if len(losses) < 2 or not losses[-1] < losses[0]:
        out.say("FAILED: the loss did not fall")
        return EXIT_NOT_LEARNING
    return 0


# -- RL -------------------------------------------------------------------------------------


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
    out: ProgressLine,
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
        batch = _batch(pairs, options.seed + 1, step, options.batch_size or 32)
        data = [demo_data.supervised_datum(w, t, tokenizer) for w, t in batch]
        pending.append(trainer.forward_backward(data, "cross_entropy"))
        trainer.optim_step(adam)
    last = pending[-1].result(WAIT_S)
    tokens = float(sum(d.loss_fn_inputs["weights"].to_numpy().sum() for d in data))
    out.say(
        f"warm-up: {options.rl_warmup_steps} supervised steps, loss/token "
        f"{last.metrics['loss:sum'] / tokens:.3f}"
    )


def run_rl_demo(
    options: DemoOptions,
    stdout: TextIO | None = None,
    stop: threading.Event | None = None,
    report: dict[str, Any] | None = None,
) -> int:
    """RL: per step, `batch_size` prompts x `samples_per_prompt` samples from a fresh sampler.

    The reward is `char_match` (the fraction of the pig latin target matched), advantages are
    centred per prompt group (and scaled by its spread; a group whose samples all scored the same
    teaches nothing and is left out), and the loss is importance_sampling with the sampling
    logprobs.
    Prints the mean reward per step; exit code 1 when it did not rise.
    """
    options = dataclasses.replace(options, rl=True).resolved()
    assert options.steps is not None and options.batch_size is not None
    assert options.learning_rate is not None and options.base_model is not None
    out = ProgressLine(stdout if stdout is not None else sys.stdout, tty=False)
    stop = stop if stop is not None else threading.Event()
    pairs = demo_data.example_pairs(seed=options.seed)
    started = time.monotonic()
    rewards: list[float] = []
    with _stop_on_sigint(stop), _service(options) as service:
        trainer = service.create_lora_training_client(
            options.base_model, rank=options.rank, seed=options.seed
        ).result(WAIT_S)
        out.say(
            f"RL: model {trainer.model_id}  {options.batch_size} prompts x "
            f"{options.samples_per_prompt} samples per step  lr {options.learning_rate:g}"
        )
        adam = tx.AdamParams(learning_rate=options.learning_rate)
        tokenizer = trainer.get_tokenizer()
        _warm_up(trainer, pairs, options, tokenizer, out)
        for step in range(options.steps):
            if stop.is_set():
                break
            step_started = time.monotonic()
            # A new sampler of the current weights every step: on-policy samples.
            sampler = trainer.save_weights_and_get_sampling_client(f"rl-{step:04d}").result(
                WAIT_S
            )
            batch = _batch(pairs, options.seed, step, options.batch_size)
            params = tx.SamplingParams(
                max_tokens=10, temperature=1.0, stop=["\n"], seed=options.seed * 100_003 + step
            )
            prompts = [demo_data.prompt_tokens(w, tokenizer) for w, _ in batch]
            futures = [
                sampler.sample(tx.ModelInput.from_ints(p), options.samples_per_prompt, params)
                for p in prompts
            ]
            data: list[types.Datum] = []
            step_rewards: list[float] = []
            example = ""
            for (word, target), prompt, future in zip(batch, prompts, futures, strict=True):
                sequences = future.result(WAIT_S).sequences
                texts = [demo_data.decode_completion(s.tokens, tokenizer) for s in sequences]
                group = [demo_data.char_match(text, target) for text in texts]
                example = example or f"{word}{demo_data.SEPARATOR}{_printable(texts[0])!r}"
                step_rewards.extend(group)
                mean, spread = float(np.mean(group)), float(np.std(group))
                for sequence, reward in zip(sequences, group, strict=True):
                    if spread > 0 and len(sequence.tokens) > 0:
                        advantage = (reward - mean) / (spread + 1e-6)
                        data.append(_rl_datum(prompt, sequence, advantage))
            rewards.append(float(np.mean(step_rewards)))
            if data:
                fb = trainer.forward_backward(data, "importance_sampling")
                opt = trainer.optim_step(adam)
                fb.result(WAIT_S)
                opt.result(WAIT_S)
            out.say(
                f"step {step + 1:3d}/{options.steps}  mean reward {rewards[-1]:.3f}  "
                f"{len(data):3d} datums  {time.monotonic() - step_started:4.1f} s  e.g. {example}"
            )
    if report is not None:
        report.update(
            mode="rl",
            base_model=options.base_model,
            steps=len(rewards),
            mean_rewards=rewards,
            interrupted=stop.is_set() and len(rewards) < options.steps,
            seconds=time.monotonic() - started,
        )
    out.say("")
    out.say("summary")
    out.say(f"  steps        {len(rewards)}")
    if rewards:
        out.say(f"  mean reward  {rewards[0]:.3f} -> {rewards[-1]:.3f}")
    out.say(f"  time         {time.monotonic() - started:.1f} s")
    if stop.is_set() and len(rewards) < options.steps:
        return EXIT_INTERRUPTED
    if len(rewards) < 2 or not max(rewards[len(rewards) // 2 :]) > rewards[0]:
        out.say("FAILED: the reward did not rise")
        return EXIT_NOT_LEARNING
    return 0
