"""The tiny real model of the embedded server: frozen byte-level base, trainable LoRA.

The network (a window of byte embeddings, a mixing layer, an MLP, an unembedding) and
its hand-written backward are in ``network.py``; this module holds the adapter itself.

Base weights are frozen and drawn from a seed derived from the model name with
sha256, so every process builds the same model. LoRA adapters ``W + alpha/rank *
A @ B`` (A from the LoRA seed, B zero, alpha 32) sit on ``W_attn`` (``train_attn``),
``W_in`` and ``W_out`` (``train_mlp``) and ``W_unembed`` (``train_unembed``); only
they train. Gradients are written by hand. ``forward_backward`` adds gradients to
an accumulator which ``optim_step`` (AdamW) applies and clears, as Tinker does.

A LoraModel serialises its own calls with a lock; it imports nothing from the rest
of the package, and the server layer converts wire types to the plain arrays here.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from tinkex_actors.types.base_models import (
    BASE_MODELS,
    DEFAULT_BASE_MODEL,
    BaseModelSpec,
    get_base_model,
)
from tinkex_actors.types.byte_tokenizer import ByteTokenizer

from . import losses
from .checkpoint import read_state, state_config, take_array, write_state
from .checks import check_adam, check_sampling, check_tokens, is_integer
from .network import CHUNK_POSITIONS, LAYERS, Network
from .sampler import (
    SampledSequence,
    SampleResult,
    log_softmax,
    parse_stop,
    prompt_logprob_rows,
    sample_sequences,
)

__all__ = [
    "BASE_MODELS",
    "DEFAULT_BASE_MODEL",
    "LORA_ALPHA",
    "BaseModelSpec",
    "ByteTokenizer",
    "ForwardResult",
    "LoraModel",
    "ModelDatum",
    "NonFiniteGradientError",
    "SampleResult",
    "SampledSequence",
    "get_base_model",
    "read_state",
]

LORA_ALPHA = 32.0
_STATE_FORMAT = 1


@dataclass(frozen=True)
class ModelDatum:
    """One training example as plain arrays: input tokens and the loss inputs."""

    tokens: npt.ArrayLike
    loss_fn_inputs: Mapping[str, npt.ArrayLike] = field(default_factory=dict)


@dataclass(frozen=True)
class ForwardResult:
    """Per-datum outputs (``logprobs``, ``elementwise_loss``) and ``name:reduction`` metrics."""

    loss_fn_outputs: list[dict[str, np.ndarray]]
    metrics: dict[str, float]


class NonFiniteGradientError(ValueError):
    """The accumulated gradient holds NaN or inf; the step was refused, weights untouched."""


class LoraModel:
    """A LoRA adapter of a given rank on a frozen base model, with its Adam state.

    ``params``, ``grads``, ``adam_m`` and ``adam_v`` (keyed ``"<layer>/A"`` and
    ``"<layer>/B"``) are readable for tests and metrics; change weights only through
    ``optim_step`` or ``load_state``, which also refresh the merged-weight cache.
    """

    def __init__(
        self,
        spec: BaseModelSpec | str = DEFAULT_BASE_MODEL,
        rank: int = 8,
        seed: int | None = None,
        train_mlp: bool = True,
        train_attn: bool = True,
        train_unembed: bool = True,
        dtype: npt.DTypeLike = np.float32,
    ) -> None:
        """Create an adapter of ``rank`` on the layers the ``train_*`` flags select.

        ``seed`` fixes the LoRA initialisation; ``None`` draws one at random, which
        ``lora_config()`` then reports. ``dtype`` is float32 for serving; float64 makes
        finite-difference gradient checks precise.
        """
        self.spec = get_base_model(spec) if isinstance(spec, str) else spec
        if not is_integer(rank):
            raise ValueError(f"rank = {rank!r} must be an integer")
        if not 1 <= rank <= self.spec.max_lora_rank:
            raise ValueError(
                f"rank = {rank} is out of range for {self.spec.name}; use 1.."
                f"{self.spec.max_lora_rank}"
            )
        self.rank = int(rank)
        if seed is not None and (not is_integer(seed) or not 0 <= seed < 2**63):
            raise ValueError(f"seed = {seed!r} must be an integer in 0..2**63-1, or None")
        self.seed = int(seed) if seed is not None else secrets.randbits(63)
        self.train_mlp = bool(train_mlp)
        self.train_attn = bool(train_attn)
        self.train_unembed = bool(train_unembed)
        self.dtype = np.dtype(dtype)
        self.scale = LORA_ALPHA / self.rank
        self.layers = tuple(
            name
            for name, on in zip(
                LAYERS, (train_attn, train_mlp, train_mlp, train_unembed), strict=True
            )
            if on
        )
        self.network = Network(self.spec, self.dtype, self.layers, self.scale)
        self._lock = threading.RLock()
        self.params: dict[str, np.ndarray] = {}
        rng = np.random.default_rng(self.seed)
        for layer in LAYERS:  # always draw every layer so flags do not shift the others
            n_in, n_out = self.spec.layer_shape(layer)
            a = (rng.standard_normal((n_in, self.rank)) / np.sqrt(n_in)).astype(self.dtype)
            if layer in self.layers:
                self.params[f"{layer}/A"] = a
                self.params[f"{layer}/B"] = np.zeros((self.rank, n_out), dtype=self.dtype)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.adam_m = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.adam_v = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.adam_step = 0
        self._effective: dict[str, np.ndarray] | None = None

    @classmethod
    def base(cls, spec: BaseModelSpec | str = DEFAULT_BASE_MODEL) -> LoraModel:
        """Return a model with no adapter at all: the frozen base weights alone."""
        return cls(spec, rank=1, seed=0, train_mlp=False, train_attn=False, train_unembed=False)

    @property
    def tokenizer(self) -> ByteTokenizer:
        """The tokenizer of every base model here."""
        return ByteTokenizer(self.spec.name)

    def lora_config(self) -> dict[str, Any]:
        """The adapter's configuration, as weights_info reports it."""
        return {
            "base_model": self.spec.name,
            "rank": self.rank,
            "seed": self.seed,
            "train_mlp": self.train_mlp,
            "train_attn": self.train_attn,
            "train_unembed": self.train_unembed,
        }

    # ----------------------------------------------------------------- weights

    def _weights(self) -> dict[str, np.ndarray]:
        """Base weights with the adapters merged in; rebuilt after each weight change."""
        if self._effective is None:
            self._effective = self.network.merge(self.params)
        return self._effective

    def _next_logits(self, contexts: np.ndarray) -> np.ndarray:
        return self.network.logits(self._weights(), contexts)[0]

    @contextlib.contextmanager
    def changing_weights(self) -> Iterator[None]:
        """Hold the model's lock while an optimizer changes ``params`` in place.

        The merged weights are rebuilt on the next use, whether the change completed or not.
        """
        with self._lock:
            try:
                yield
            finally:
                self._effective = None

    # -------------------------------------------------------- forward_backward

    def forward_backward(
        self,
        datums: Sequence[ModelDatum | Mapping[str, Any]],
        loss_fn: str,
        loss_fn_config: Mapping[str, float | str] | None = None,
        backward: bool = True,
    ) -> ForwardResult:
        """Compute the loss of ``datums``; with ``backward`` add its gradient to the adapter's.

        Each datum gives ``tokens`` (N ids) and ``loss_fn_inputs`` (``target_tokens`` of
        N rows, plus what ``loss_fn`` reads). Outputs per datum: ``logprobs`` and
        ``elementwise_loss`` (float32, the shape of ``target_tokens``); metrics:
        ``loss:sum``. Invalid input raises ValueError before any state changes.
        """
        config = losses.resolve_loss_fn_config(loss_fn, loss_fn_config)
        if len(datums) == 0:
            raise ValueError("data is empty; give at least one datum")
        token_arrays, input_dicts = [], []
        for i, datum in enumerate(datums):
            tokens, inputs = _datum_parts(datum, i)
            token_arrays.append(check_tokens(self.spec, tokens, f"data[{i}].tokens"))
            input_dicts.append(
                losses.check_loss_fn_inputs(
                    loss_fn, i, token_arrays[-1].size, inputs, self.spec.vocab_size
                )
            )
        flat = losses.flatten_targets(token_arrays, input_dicts, config)
        contexts = np.concatenate([self.network.contexts(t) for t in token_arrays])
        with self._lock:
            logp, loss = self.network.loss_pass(
                self._weights(), self.params, self.grads, contexts, flat, loss_fn, config, backward
            )
        outputs: list[dict[str, np.ndarray]] = []
        start = 0
        for inputs in input_dicts:
            shape = inputs["target_tokens"].shape
            stop = start + int(np.prod(shape))
            outputs.append(
                {
                    "logprobs": logp[start:stop].astype(np.float32).reshape(shape),
                    "elementwise_loss": loss[start:stop].astype(np.float32).reshape(shape),
                }
            )
            start = stop
        return ForwardResult(outputs, {"loss:sum": float(loss.sum())})

    def forward(
        self,
        datums: Sequence[ModelDatum | Mapping[str, Any]],
        loss_fn: str,
        loss_fn_config: Mapping[str, float | str] | None = None,
    ) -> ForwardResult:
        """Compute outputs and metrics like ``forward_backward`` without touching gradients."""
        return self.forward_backward(datums, loss_fn, loss_fn_config, backward=False)

    # --------------------------------------------------------------- optimizer

    def optim_step(
        self,
        learning_rate: float = 1e-4,
        beta1: float = 0.9,
        beta2: float = 0.95,
        eps: float = 1e-12,
        weight_decay: float = 0.0,
        grad_clip_norm: float = 0.0,
    ) -> dict[str, float]:
        """Apply the accumulated gradient with AdamW and clear it; return step metrics.

        Bias-corrected Adam; decoupled weight decay ``p -= lr * weight_decay * p``;
        when ``grad_clip_norm > 0`` the global gradient norm is scaled down to it.
        Defaults are those of the SDK's AdamParams. A NaN or inf gradient raises
        NonFiniteGradientError and is discarded, the weights and Adam state untouched.
        """
        check_adam(learning_rate, beta1, beta2, eps, weight_decay, grad_clip_norm)
        with self.changing_weights():
            grad_norm, clip = self.clipped_grad_norm(grad_clip_norm)
            self.adam_step += 1
            t = self.adam_step
            # Python floats are weak scalars for numpy: the arithmetic stays in self.dtype.
            correction1, correction2 = 1.0 - beta1**t, 1.0 - beta2**t
            for key, p in self.params.items():
                g = self.grads[key] * clip if clip != 1.0 else self.grads[key]
                m, v = self.adam_m[key], self.adam_v[key]
                m *= beta1
                m += (1.0 - beta1) * g
                v *= beta2
                v += (1.0 - beta2) * (g * g)
                if weight_decay:
                    p *= 1.0 - learning_rate * weight_decay
                denom = np.sqrt(v / correction2) + eps
                p -= (learning_rate / correction1) * m / denom
            self.zero_grad()
        return {"grad_norm:mean": grad_norm, "learning_rate:mean": float(learning_rate)}

    def clipped_grad_norm(self, grad_clip_norm: float) -> tuple[float, float]:
        """(global gradient norm, factor scaling it down to ``grad_clip_norm``, else 1.0).

        For optimizers, inside ``changing_weights()``. A NaN or inf gradient is discarded and
        raises NonFiniteGradientError, so the step leaves weights and optimizer state untouched.
        """
        squares = sum(float(np.sum(np.square(g, dtype=np.float64))) for g in self.grads.values())
        grad_norm = float(np.sqrt(squares))
        if not np.isfinite(grad_norm):
            self.zero_grad()
            raise NonFiniteGradientError(
                "the accumulated gradient holds NaN or inf, so the step was refused and "
                "the gradient discarded; check the loss inputs (advantages, logprobs) "
                "and lower the learning rate"
            )
        clip = 1.0
        if grad_clip_norm > 0 and grad_norm > grad_clip_norm:
            clip = grad_clip_norm / grad_norm
        return grad_norm, clip

    def zero_grad(self) -> None:
        """Discard the accumulated gradient."""
        with self._lock:
            for g in self.grads.values():
                g.fill(0)

    # ------------------------------------------------------------------- state

    def state(self, include_optimizer: bool = True) -> dict[str, np.ndarray]:
        """Return a copy of the adapter (and Adam state) as named arrays, self-describing.

        The pending (not yet applied) gradient is not part of the state.
        """
        with self._lock:
            out: dict[str, np.ndarray] = {
                "meta/format": np.array(_STATE_FORMAT, np.int64),
                "meta/base_model": np.frombuffer(self.spec.name.encode("utf-8"), np.uint8).copy(),
                "meta/rank": np.array(self.rank, np.int64),
                "meta/seed": np.array(self.seed, np.int64),
                "meta/train_flags": np.array(
                    [self.train_mlp, self.train_attn, self.train_unembed], np.bool_
                ),
            }
            for key, p in self.params.items():
                out[f"lora/{key}"] = p.copy()
            if include_optimizer:
                out["optimizer/step"] = np.array(self.adam_step, np.int64)
                for key in self.params:
                    out[f"optimizer/m/{key}"] = self.adam_m[key].copy()
                    out[f"optimizer/v/{key}"] = self.adam_v[key].copy()
            return out

    def load_state(self, state: Mapping[str, np.ndarray], with_optimizer: bool = True) -> None:
        """Replace the adapter (and, if ``with_optimizer``, the Adam state) by ``state``.

        Without the optimizer the Adam moments and step count restart from zero. The
        pending gradient is discarded. A state of another base model, rank or layer
        set raises ValueError and changes nothing.
        """
        config = state_config(state)
        mine = self.lora_config()
        for key in ("base_model", "rank", "train_mlp", "train_attn", "train_unembed"):
            if config[key] != mine[key]:
                raise ValueError(
                    f"checkpoint {key} = {config[key]!r} but this model has {mine[key]!r}; "
                    "load it into a model created with the same LoRA config "
                    "(LoraModel.from_state does that)"
                )
        if with_optimizer and "optimizer/step" not in state:
            raise ValueError(
                "the checkpoint holds no optimizer state; load it with with_optimizer=False "
                "or save it with include_optimizer=True"
            )
        new_params = {
            k: take_array(state, f"lora/{k}", p, self.dtype) for k, p in self.params.items()
        }
        with self._lock:
            self.params = new_params
            if with_optimizer:
                self.adam_m = {
                    k: take_array(state, f"optimizer/m/{k}", p, self.dtype)
                    for k, p in new_params.items()
                }
                self.adam_v = {
                    k: take_array(state, f"optimizer/v/{k}", p, self.dtype)
                    for k, p in new_params.items()
                }
                self.adam_step = int(state["optimizer/step"])
            else:
                self.adam_m = {k: np.zeros_like(p) for k, p in new_params.items()}
                self.adam_v = {k: np.zeros_like(p) for k, p in new_params.items()}
                self.adam_step = 0
            self.seed = int(config["seed"])
            self.grads = {k: np.zeros_like(p) for k, p in new_params.items()}
            self._effective = None

    @classmethod
    def from_state(
        cls,
        state: Mapping[str, np.ndarray],
        with_optimizer: bool = True,
        dtype: npt.DTypeLike = np.float32,
    ) -> LoraModel:
        """Build a model with the LoRA config recorded in ``state`` and load it."""
        config = state_config(state)
        model = cls(
            config["base_model"],
            rank=config["rank"],
            seed=config["seed"],
            train_mlp=config["train_mlp"],
            train_attn=config["train_attn"],
            train_unembed=config["train_unembed"],
            dtype=dtype,
        )
        model.load_state(state, with_optimizer=with_optimizer and "optimizer/step" in state)
        return model

    def save(self, path: str | os.PathLike[str], include_optimizer: bool = True) -> None:
        """Write ``state(include_optimizer)`` to ``path`` as .npz, atomically (temp + rename)."""
        write_state(path, self.state(include_optimizer))

    def load(self, path: str | os.PathLike[str], with_optimizer: bool = True) -> None:
        """Load a file written by ``save`` into this model (see ``load_state``)."""
        self.load_state(read_state(path), with_optimizer=with_optimizer)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], with_optimizer: bool = True) -> LoraModel:
        """Build a model from a file written by ``save``."""
        return cls.from_state(read_state(path), with_optimizer=with_optimizer)

    # ---------------------------------------------------------------- sampling

    def sample(
        self,
        prompt_tokens: npt.ArrayLike,
        max_tokens: int | None = None,
        temperature: float = 1.0,
        top_k: int = -1,
        top_p: float = 1.0,
        stop: str | Sequence[str] | Sequence[int] | None = None,
        seed: int | None = None,
        num_samples: int = 1,
        prompt_logprobs: bool = False,
        topk_prompt_logprobs: int | None = 0,
    ) -> SampleResult:
        """Generate continuations of ``prompt_tokens`` with the current weights.

        Parameters follow Tinker's SamplingParams (see ``sampler`` for the choices
        made): ``max_tokens=None`` fills the model's maximum length; temperature 0
        is greedy; ``top_k <= 0`` disables top-k; the same seed gives the same tokens.
        """
        prompt = check_tokens(self.spec, prompt_tokens, "prompt")
        limit = self.spec.max_seq_len - prompt.size
        if max_tokens is None:
            max_tokens = limit
        check_sampling(max_tokens, limit, temperature, top_k, top_p, num_samples)
        if topk_prompt_logprobs is None:
            topk_prompt_logprobs = 0
        if not is_integer(topk_prompt_logprobs) or not (
            0 <= topk_prompt_logprobs <= self.spec.vocab_size
        ):
            raise ValueError(
                f"topk_prompt_logprobs = {topk_prompt_logprobs!r} must be an integer in "
                f"0..{self.spec.vocab_size}"
            )
        condition = parse_stop(stop, self.spec.vocab_size)
        with self._lock:
            contexts = self.network.contexts(prompt)
            prompt_lp: list[float | None] | None = None
            topk_lp: list[list[tuple[int, float]] | None] | None = None
            if prompt_logprobs or topk_prompt_logprobs > 0:
                predicting = contexts[: prompt.size - 1]  # position i predicts token i + 1
                rows = [
                    log_softmax(self._next_logits(predicting[lo : lo + CHUNK_POSITIONS]))
                    for lo in range(0, predicting.shape[0], CHUNK_POSITIONS)
                ]
                logp_rows = np.concatenate(rows) if rows else np.empty((0, self.spec.vocab_size))
                prompt_lp, topk_lp = prompt_logprob_rows(
                    prompt, logp_rows, prompt_logprobs, int(topk_prompt_logprobs)
                )
            sequences = sample_sequences(
                self._next_logits,
                np.array(contexts[-1]),
                max_tokens=max_tokens,
                temperature=float(temperature),
                top_k=int(top_k),
                top_p=float(top_p),
                stop=condition,
                seed=seed,
                num_samples=num_samples,
            )
        return SampleResult(sequences, prompt_lp, topk_lp)

    def compute_logprobs(self, tokens: npt.ArrayLike) -> list[float | None]:
        """Return the log-probability of each token given those before it (None first)."""
        result = self.sample(tokens, max_tokens=0, prompt_logprobs=True)
        assert result.prompt_logprobs is not None
        return result.prompt_logprobs


# -------------------------------------------------------------------- helpers


def _datum_parts(datum: ModelDatum | Mapping[str, Any], index: int) -> tuple[Any, Any]:
    if isinstance(datum, ModelDatum):
        return datum.tokens, datum.loss_fn_inputs
    if isinstance(datum, Mapping) and "tokens" in datum:
        return datum["tokens"], datum.get("loss_fn_inputs", {})
    raise ValueError(
        f"data[{index}] is a {type(datum).__name__}; give a ModelDatum or a mapping with "
        "'tokens' and 'loss_fn_inputs'"
    )
