"""What the demo's supervised and RL runs share: options, checkpoint log, service, trainer.

`demo` (the dispatcher) picks `demo_sft` or `demo_rl`; both take their options, constants,
Ctrl-C handling, service and trainer opening, batching and greedy sampling from here, so
imports run one way: demo -> demo_sft / demo_rl -> demo_common.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import random
import signal
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import Any

import tinkex_actors as tx
from tinkex_actors import telemetry
from tinkex_actors.demo import data as demo_data

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_NOT_LEARNING",
    "CheckpointLog",
    "DemoOptions",
    "QueueWatch",
    "batch_of",
    "choose_base_model",
    "greedy",
    "open_service",
    "open_trainer",
    "stop_on_sigint",
    "with_base_model",
]

EXIT_NOT_LEARNING = 1
EXIT_INTERRUPTED = 130
WAIT_S = 600.0
"""The longest the demo waits for any one answer before giving up with an error."""
REFRESH_S = 0.5
"""How often a waiting step wakes up to show queue pauses."""
SAMPLE_WORDS = 4
"""How many words are shown before and after training."""
EMBEDDED_MODEL = "small-byte-lm"
"""The embedded base model of the supervised demo: its 16-byte window sees a whole example."""
EMBEDDED_RL_MODEL = "tiny-byte-lm"
"""The embedded base model of the RL demo: the fastest to sample 256 completions a step."""
EMBEDDED_KEY = "tml-tinkex-demo-embedded"
"""The key given to the demo's own embedded server (which accepts any well-formed key)."""
SERVICE_MODEL = "Qwen/Qwen3-8B"
"""Preferred on a service that serves it, when `--base-model` is not given."""
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
                f"learning_rate={self.learning_rate!r} must be > 0 (e.g. --lr 1e-2)"
            )
        object.__setattr__(self, "output_dir", Path(self.output_dir))

    def embedded(self, environ: Mapping[str, str] | None = None) -> bool:
        """True when the demo will start the embedded server (no URL or key anywhere)."""
        env = os.environ if environ is None else environ
        named = (self.base_url, self.api_key, env.get("TINKER_BASE_URL"), env.get("TINKER_API_KEY"))
        return not any(named)

    def resolved(self, environ: Mapping[str, str] | None = None) -> DemoOptions:
        """These options with the mode's defaults filled in.

        On a service (not embedded) the base model stays None when not given: the run asks the
        server which models it serves (`choose_base_model`).
        """
        defaults: dict[str, Any] = (
            {"steps": 20, "learning_rate": 5e-3, "batch_size": 32}
            if self.rl
            else {"steps": 200, "learning_rate": 1e-2, "batch_size": 32}
        )
        if self.embedded(environ):
            defaults["base_model"] = EMBEDDED_RL_MODEL if self.rl else EMBEDDED_MODEL
        chosen = {k: getattr(self, k) or v for k, v in defaults.items()}
        return dataclasses.replace(self, **chosen)


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

    def last(self, mode: str | None = None) -> dict[str, Any] | None:
        """The newest entry (of this mode, 'supervised' or 'rl', when given), or None."""
        entries = [
            e for e in self.entries() if mode is None or e.get("mode", "supervised") == mode
        ]
        return entries[-1] if entries else None

    def save(
        self,
        trainer: tx.TrainingClient,
        future: tx.Future[Any],
        step: int,
        metric: dict[str, float | None],
        options: DemoOptions,
        mode: str,
    ) -> str:
        """Wait for a save_state and record it (the cookbook's fields and ours); its path."""
        path: str = future.result(WAIT_S).path
        self.record(
            {
                "name": path.rsplit("/", 1)[-1],
                "path": path,
                "state_path": path,
                "step": step,
                **metric,
                "mode": mode,
                "model_id": trainer.model_id,
                "base_model": options.base_model,
                "rank": options.rank,
                "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            }
        )
        return path


# -- Ctrl-C ---------------------------------------------------------------------------------


@contextlib.contextmanager
def stop_on_sigint(stop: threading.Event) -> Iterator[None]:
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


# -- the service and its models -----------------------------------------------------------------


@contextlib.contextmanager
def open_service(options: DemoOptions) -> Iterator[tuple[tx.ServiceClient, Path | None]]:
    """A ServiceClient on the named service, or on an embedded server of our own.

    The embedded server keeps its data in `<output_dir>/server` (the second item; None on a
    service), so the checkpoints recorded in checkpoints.jsonl are still there when the demo
    is re-run with `--resume`, and `tinkex-actors serve --data-dir` can browse them.
    """
    if not options.embedded():
        with tx.ServiceClient(api_key=options.api_key, base_url=options.base_url) as service:
            yield service, None
        return
    from tinkex_actors.local import LocalServer

    data_dir = options.output_dir / "server"
    with (
        LocalServer(data_dir=data_dir) as server,
        tx.ServiceClient(api_key=server.api_key, base_url=server.url) as service,
    ):
        yield service, data_dir


def choose_base_model(service: tx.ServiceClient, rl: bool) -> tuple[str, list[str]]:
    """A trainable model the server serves (ours first if it has them); also all it serves."""
    supported = service.get_server_capabilities().supported_models
    names = [m.model_name for m in supported if m.model_name and m.trainable is not False]
    if not names:
        raise ValueError("the server serves no trainable model; pass --base-model NAME")
    preferred = (EMBEDDED_RL_MODEL, EMBEDDED_MODEL) if rl else (EMBEDDED_MODEL, EMBEDDED_RL_MODEL)
    for name in (*preferred, SERVICE_MODEL):
        if name in names:
            return name, names
    return names[0], names


def with_base_model(
    options: DemoOptions, service: tx.ServiceClient, say: Any
) -> DemoOptions:
    """`options` with a base model: the one given, else one the server says it serves."""
    if options.base_model is not None:
        return options
    name, names = choose_base_model(service, options.rl)
    say(f"base model {name} (the server serves {', '.join(names)}; pass --base-model to choose)")
    return dataclasses.replace(options, base_model=name)


def open_trainer(
    service: tx.ServiceClient, options: DemoOptions, resume_from: Mapping[str, Any] | None
) -> tx.TrainingClient:
    """The run's TrainingClient: resumed from a checkpoint with its optimizer, or a new LoRA."""
    if resume_from is not None:
        return service.create_training_client_from_state_with_optimizer(
            resume_from["path"]
        ).result(WAIT_S)
    assert options.base_model is not None
    return service.create_lora_training_client(
        options.base_model, rank=options.rank, seed=options.seed
    ).result(WAIT_S)


def batch_of(
    pairs: list[tuple[str, str]], seed: int, step: int, size: int
) -> list[tuple[str, str]]:
    """The examples of one step: a function of (seed, step) only, so a resumed run sees the
    batches it would have seen."""
    rng = random.Random(seed * 1_000_003 + step)
    return [pairs[rng.randrange(len(pairs))] for _ in range(size)]


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
        """'' while active; else the state (and reason) for the progress display."""
        if self.state == "active":
            return ""
        return f"queue {self.state}" + (f" ({self.reason})" if self.reason else "")

    def close(self) -> None:
        """Stop listening."""
        telemetry.detach(self._attachment)


def greedy(sampler: tx.SamplingClient, words: list[str], tokenizer: Any) -> list[str]:
    """Greedy completions of the demo's prompt for each word."""
    params = tx.SamplingParams(max_tokens=12, temperature=0.0, stop=["\n"])
    futures = [
        sampler.sample(tx.ModelInput.from_ints(demo_data.prompt_tokens(w, tokenizer)), 1, params)
        for w in words
    ]
    return [
        demo_data.decode_completion(f.result(WAIT_S).sequences[0].tokens, tokenizer)
        for f in futures
    ]
