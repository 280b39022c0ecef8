"""The tiny model's network: its forward pass over token windows and its hand-written backward.

One block, every position computed independently, so a batch of datums is one set of big
matrix products:

1. The window of the last ``C`` tokens (the current one included; positions before the start
   read a pad row) is embedded: ``x[j] = emb[token_j]``, ``E`` wide.
2. Mixing layer, standing in for attention's projections: ``y[j] = x[j] @ (I + W_attn)``
   (computed as a lookup in ``emb @ (I + W_attn)``, rebuilt when the weights change).
3. MLP over the concatenated window: ``h = tanh(concat(y) @ W_in + b_in)``.
4. Residual on the current token: ``r = y[C-1] + h @ W_out``.
5. Unembedding: ``logits = r @ W_unembed`` over the 258-token byte vocabulary.

LoRA adapters ``W + scale * A @ B`` sit on the layers a model trains; `Network` holds the
frozen base and computes with the adapter arrays it is given, keeping no state of its own.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from tinkex_actors.types.base_models import BaseModelSpec

from . import losses
from .specs import base_weights

__all__ = ["CHUNK_POSITIONS", "LAYERS", "Network"]

LAYERS = ("attn", "mlp_in", "mlp_out", "unembed")
"""The layers a LoRA adapter may sit on, in the order their initial weights are drawn."""
CHUNK_POSITIONS = 256
"""Positions per pass: small enough for the working set to stay in cache."""


class Network:
    """The frozen base of one model, and the math of a LoRA adapter on it."""

    def __init__(
        self, spec: BaseModelSpec, dtype: np.dtype, layers: tuple[str, ...], scale: float
    ) -> None:
        self.spec = spec
        self.dtype = dtype
        self.layers = layers
        """The layers that carry an adapter (and so train)."""
        self.scale = scale
        self.base = base_weights(spec, dtype.name)

    def merge(self, params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Base weights with the adapters merged in (and the mixing layer's lookup table)."""
        b = self.base
        merged = {"attn": b.attn, "mlp_in": b.mlp_in, "mlp_out": b.mlp_out, "unembed": b.unembed}
        for layer in self.layers:
            delta = params[f"{layer}/A"] @ params[f"{layer}/B"]
            merged[layer] = merged[layer] + self.scale * delta
        merged["attn"] = merged["attn"] + np.eye(self.spec.embed_dim, dtype=self.dtype)
        # Every window slot is an embedding row, so the mixing layer is a lookup table.
        merged["mixed_emb"] = b.emb @ merged["attn"]
        return merged

    def contexts(self, tokens: np.ndarray) -> np.ndarray:
        """Return the (N, C) windows ending at each position, padded before the start."""
        c = self.spec.context_length
        padded = np.concatenate([np.full(c - 1, self.spec.vocab_size, np.int64), tokens])
        return np.lib.stride_tricks.sliding_window_view(padded, c)

    def logits(
        self, w: Mapping[str, np.ndarray], contexts: np.ndarray
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """Next-token logits of each window under merged weights `w`, and the backward cache."""
        m, c = contexts.shape
        e = self.spec.embed_dim
        flat = np.take(w["mixed_emb"], contexts, axis=0).reshape(m, c * e)
        h = np.tanh(flat @ w["mlp_in"] + self.base.b_in)
        r = flat[:, (c - 1) * e :] + h @ w["mlp_out"]
        return r @ w["unembed"], (contexts, flat, h, r)

    def backward(
        self,
        w: Mapping[str, np.ndarray],
        params: Mapping[str, np.ndarray],
        grads: Mapping[str, np.ndarray],
        dlogits: np.ndarray,
        cache: tuple[np.ndarray, ...],
    ) -> None:
        """Add the adapters' gradients, given dL/dlogits, to `grads`."""
        contexts, flat, h, r = cache
        trained = self.layers
        if "unembed" in trained:
            self._lora_grad(params, grads, "unembed", r, dlogits)
        if trained == ("unembed",):
            return
        dr = dlogits @ w["unembed"].T
        if "mlp_out" in trained:
            self._lora_grad(params, grads, "mlp_out", h, dr)
        dpre = (dr @ w["mlp_out"].T) * (1 - h * h)
        if "mlp_in" in trained:
            self._lora_grad(params, grads, "mlp_in", flat, dpre)
        if "attn" in trained:
            m, c, e = flat.shape[0], self.spec.context_length, self.spec.embed_dim
            dy = (dpre @ w["mlp_in"].T).reshape(m, c, e)
            dy[:, -1, :] += dr
            x = np.take(self.base.emb, contexts, axis=0).reshape(m * c, e)
            self._lora_grad(params, grads, "attn", x, dy.reshape(m * c, e))

    def _lora_grad(
        self,
        params: Mapping[str, np.ndarray],
        grads: Mapping[str, np.ndarray],
        layer: str,
        x: np.ndarray,
        dy: np.ndarray,
    ) -> None:
        """Add the gradients of ``y = x @ (W + s A B)`` w.r.t. A and B, given dL/dy."""
        a, b = params[f"{layer}/A"], params[f"{layer}/B"]
        s = self.scale
        grads[f"{layer}/B"] += s * ((x @ a).T @ dy)
        grads[f"{layer}/A"] += s * (x.T @ (dy @ b.T))

    def loss_pass(
        self,
        w: Mapping[str, np.ndarray],
        params: Mapping[str, np.ndarray],
        grads: Mapping[str, np.ndarray],
        contexts: np.ndarray,
        flat: dict[str, np.ndarray],
        loss_fn: str,
        config: Mapping[str, float],
        backward: bool,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(logprob, loss) of every target row; with `backward`, gradients added to `grads`.

        `flat` holds the targets flattened by `losses.flatten_targets` (`position`,
        `target_tokens` and the loss inputs), sorted by position.
        """
        positions, targets = flat["position"], flat["target_tokens"]
        multi_target = positions.size != contexts.shape[0]
        logp_all = np.empty(positions.size, np.float64)
        loss_all = np.empty(positions.size, np.float64)
        for lo in range(0, contexts.shape[0], CHUNK_POSITIONS):
            hi = min(lo + CHUNK_POSITIONS, contexts.shape[0])
            t_lo, t_hi = np.searchsorted(positions, [lo, hi])
            rows = positions[t_lo:t_hi] - lo
            cols = targets[t_lo:t_hi]
            logits, cache = self.logits(w, contexts[lo:hi])
            logits -= logits.max(axis=1, keepdims=True)
            probs = np.exp(logits)
            sums = probs.sum(axis=1, keepdims=True)
            logp = logits[rows, cols].astype(np.float64) - np.log(sums[rows, 0], dtype=np.float64)
            chunk_inputs = {k: v[t_lo:t_hi] for k, v in flat.items() if v.dtype == np.float64}
            loss, grad = losses.loss_and_grad(loss_fn, logp, chunk_inputs, config)
            logp_all[t_lo:t_hi], loss_all[t_lo:t_hi] = logp, loss
            if not backward or not self.layers:
                continue
            # d logp[t] / d logits = onehot(target) - softmax, per target row.
            per_row = np.bincount(rows, weights=grad, minlength=hi - lo)
            dlogits = probs
            dlogits *= (-per_row[:, None] / sums).astype(self.dtype)
            g = grad.astype(self.dtype)
            if multi_target:
                np.add.at(dlogits, (rows, cols), g)
            else:
                dlogits[rows, cols] += g
            self.backward(w, params, grads, dlogits, cache)
        return logp_all, loss_all
