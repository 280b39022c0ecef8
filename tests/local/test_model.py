"""The embedded server's tiny model: tokenizer, losses, gradients, Adam, checkpoints, sampling."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest

from tinkex_actors.local.model import (
    BASE_MODELS,
    DEFAULT_BASE_MODEL,
    ByteTokenizer,
    LoraModel,
    ModelDatum,
    NonFiniteGradientError,
    get_base_model,
)
from tinkex_actors.local.specs import base_weights

TOKENIZER = ByteTokenizer()
PIG_LATIN = ["hello -> ellohay", "world -> orldway", "pig -> igpay", "latin -> atinlay"]
RL_LOSSES = ["importance_sampling", "ppo", "cispo", "dro"]


def sft_datum(text: str, weights: bool = True) -> ModelDatum:
    """Next-token datum of ``text`` + <eos>: input tokens[:-1], targets tokens[1:]."""
    ids = [*TOKENIZER.encode(text), TOKENIZER.eos_token_id]
    inputs: dict[str, np.ndarray] = {"target_tokens": np.array(ids[1:], np.int64)}
    if weights:
        inputs["weights"] = np.ones(len(ids) - 1, np.float32)
    return ModelDatum(np.array(ids[:-1]), inputs)


def random_datums(
    rng: np.random.Generator, loss_fn: str, model: LoraModel, count: int = 2, length: int = 12
) -> list[ModelDatum]:
    """Random datums for ``loss_fn``; RL sampling logprobs sit near the model's own."""
    datums = []
    for _ in range(count):
        tokens = rng.integers(0, 258, length)
        targets = rng.integers(0, 258, length)
        inputs: dict[str, np.ndarray] = {"target_tokens": targets}
        if loss_fn == "cross_entropy":
            inputs["weights"] = rng.uniform(0.0, 2.0, length)
        else:
            own = model.forward(
                [ModelDatum(tokens, {"target_tokens": targets})], "cross_entropy"
            ).loss_fn_outputs[0]["logprobs"]
            inputs["logprobs"] = own + rng.uniform(-0.5, 0.5, length)
            inputs["advantages"] = rng.normal(0.0, 1.0, length)
        datums.append(ModelDatum(tokens, inputs))
    return datums


def perturbed_model(seed: int = 3, **flags: bool) -> LoraModel:
    """A float64 model whose B matrices are non-zero, so every LoRA gradient is non-zero."""
    model = LoraModel(DEFAULT_BASE_MODEL, rank=4, seed=seed, dtype=np.float64, **flags)
    rng = np.random.default_rng(seed)
    state = model.state(include_optimizer=False)
    for key in state:
        if key.startswith("lora/") and key.endswith("/B"):
            state[key] = rng.normal(0.0, 0.05, state[key].shape)
    model.load_state(state, with_optimizer=False)
    return model


def finite_difference_check(model: LoraModel, datums, loss_fn, config=None, objective=None) -> None:
    """Compare the accumulated gradient with central differences on sampled entries.

    ``objective`` (datums, loss_fn, config) is what the differences are taken of; by
    default the loss itself (a stop-gradient loss needs its surrogate instead).
    """
    model.zero_grad()
    model.forward_backward(datums, loss_fn, config)
    fd_datums, fd_loss_fn, fd_config = objective or (datums, loss_fn, config)
    analytic = {k: g.copy() for k, g in model.grads.items()}
    base_state = model.state(include_optimizer=False)
    rng = np.random.default_rng(0)
    step = 1e-6
    for key, grad in analytic.items():
        for flat_index in rng.choice(grad.size, size=4, replace=False):
            index = np.unravel_index(flat_index, grad.shape)
            losses = []
            for sign in (1.0, -1.0):
                state = {k: v.copy() for k, v in base_state.items()}
                state[f"lora/{key}"][index] += sign * step
                model.load_state(state, with_optimizer=False)
                result = model.forward(fd_datums, fd_loss_fn, fd_config)
                losses.append(result.metrics["loss:sum"])
            numeric = (losses[0] - losses[1]) / (2 * step)
            assert numeric == pytest.approx(grad[index], rel=1e-4, abs=1e-6), (key, index)
    model.load_state(base_state, with_optimizer=False)


@pytest.fixture(scope="module")
def trained() -> LoraModel:
    """A tiny model trained for 120 steps on the pig-latin pairs."""
    model = LoraModel(DEFAULT_BASE_MODEL, rank=8, seed=1)
    data = [sft_datum(text) for text in PIG_LATIN]
    for _ in range(120):
        model.forward_backward(data, "cross_entropy")
        model.optim_step(learning_rate=1e-2)
    return model


class TestByteTokenizer:
    """The byte tokenizer looks like a small Hugging Face tokenizer."""

    def test_encode_then_decode_returns_the_text(self) -> None:
        """Text, accents included, survives encode and decode."""
        text = "héllo → wörld"
        ids = TOKENIZER.encode(text)
        assert ids[0] == TOKENIZER.bos_token_id
        assert TOKENIZER.decode(ids, skip_special_tokens=True) == text

    def test_special_tokens_render_unless_skipped(self) -> None:
        """<bos> and <eos> appear in decoded text unless skip_special_tokens is set."""
        ids = [*TOKENIZER.encode("hi"), TOKENIZER.eos_token_id]
        assert TOKENIZER.decode(ids) == "<bos>hi<eos>"
        assert TOKENIZER.encode("hi", add_special_tokens=False) == [104, 105]

    def test_invalid_utf8_is_replaced(self) -> None:
        """A lone continuation byte decodes to U+FFFD instead of raising."""
        assert TOKENIZER.decode([0x80, 104]) == "\ufffdh"

    def test_sizes_match_the_vocabulary(self) -> None:
        """vocab_size, len() and the special ids agree."""
        assert TOKENIZER.vocab_size == len(TOKENIZER) == 258
        assert (TOKENIZER.bos_token_id, TOKENIZER.eos_token_id) == (256, 257)

    def test_out_of_vocabulary_ids_are_rejected(self) -> None:
        """Decoding an id above 257 names the position and the range."""
        with pytest.raises(ValueError, match=r"token_ids\[1\] = 999"):
            TOKENIZER.decode([1, 999])


class TestBaseModels:
    """Named base models of different sizes with name-seeded frozen weights."""

    def test_several_sizes_are_listed_with_a_default(self) -> None:
        """At least three models exist, the default is the smallest, sizes grow."""
        assert DEFAULT_BASE_MODEL in BASE_MODELS and len(BASE_MODELS) >= 3
        widths = [spec.embed_dim for spec in BASE_MODELS.values()]
        assert widths == sorted(widths)
        assert all(spec.description and spec.max_seq_len >= 2048 for spec in BASE_MODELS.values())

    def test_weights_are_identical_in_another_process(self) -> None:
        """The weights derive from sha256 of the name, so a fresh interpreter rebuilds them."""
        code = (
            "import hashlib;from tinkex_actors.local.specs import base_weights;"
            "from tinkex_actors.types.base_models import get_base_model;"
            "w=base_weights(get_base_model('tiny-byte-lm'),'float32');"
            "print(hashlib.sha256(w.emb.tobytes()+w.mlp_in.tobytes()).hexdigest())"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
        )
        here = base_weights(get_base_model("tiny-byte-lm"), "float32")
        digest = hashlib.sha256(here.emb.tobytes() + here.mlp_in.tobytes()).hexdigest()
        assert out.stdout.strip() == digest

    def test_different_names_give_different_weights(self) -> None:
        """Each model has its own seed."""
        assert (
            get_base_model("tiny-byte-lm").weight_seed
            != get_base_model("small-byte-lm").weight_seed
        )

    def test_base_weights_are_read_only(self) -> None:
        """Nobody can modify the shared frozen weights by accident."""
        weights = base_weights(get_base_model("tiny-byte-lm"), "float32")
        with pytest.raises(ValueError):
            weights.emb[0, 0] = 1.0

    def test_lora_seed_fixes_the_initialisation(self) -> None:
        """One seed gives identical A matrices and zero B; another seed differs."""
        first, again, other = (LoraModel(rank=4, seed=s) for s in (1, 1, 2))
        for key, value in first.params.items():
            np.testing.assert_array_equal(value, again.params[key])
            if key.endswith("/B"):
                assert not value.any()
        assert not np.array_equal(first.params["mlp_in/A"], other.params["mlp_in/A"])
        assert LoraModel(rank=4).seed != LoraModel(rank=4).seed  # None draws a seed

    def test_lora_config_reports_rank_flags_and_seed(self) -> None:
        """lora_config carries what weights_info needs."""
        model = LoraModel("small-byte-lm", rank=16, seed=5, train_attn=False)
        assert model.lora_config() == {
            "base_model": "small-byte-lm",
            "rank": 16,
            "seed": 5,
            "train_mlp": True,
            "train_attn": False,
            "train_unembed": True,
        }


class TestGradients:
    """Hand-written gradients agree with finite differences for every loss."""

    @pytest.mark.parametrize("loss_fn", ["cross_entropy", "importance_sampling", "ppo", "dro"])
    def test_gradient_matches_finite_differences(self, loss_fn: str) -> None:
        """Every adapter matrix's gradient matches central differences."""
        model = perturbed_model()
        datums = random_datums(np.random.default_rng(1), loss_fn, model)
        config = {"beta": 0.3} if loss_fn == "dro" else None
        finite_difference_check(model, datums, loss_fn, config)

    def test_cispo_gradient_treats_the_clipped_ratio_as_a_constant(self) -> None:
        """cispo's gradient is that of -c * logp * A with c = clip(ratio) frozen."""
        model = perturbed_model()
        datums = random_datums(np.random.default_rng(1), "cispo", model)
        outputs = model.forward(datums, "cispo").loss_fn_outputs
        surrogate = []
        for datum, out in zip(datums, outputs, strict=True):
            inputs = datum.loss_fn_inputs
            ratio = np.clip(np.exp(out["logprobs"] - inputs["logprobs"]), 0.8, 1.2)
            weights = ratio * inputs["advantages"]
            surrogate.append(
                ModelDatum(
                    datum.tokens, {"target_tokens": inputs["target_tokens"], "weights": weights}
                )
            )
        finite_difference_check(
            model, datums, "cispo", objective=(surrogate, "cross_entropy", None)
        )

    def test_ppo_gradient_with_per_token_thresholds(self) -> None:
        """Per-token clip thresholds from loss_fn_inputs are differentiated correctly."""
        model = perturbed_model()
        datums = random_datums(np.random.default_rng(2), "ppo", model)
        for datum in datums:
            n = len(datum.loss_fn_inputs["advantages"])
            datum.loss_fn_inputs["clip_low_threshold"] = np.full(n, 0.9)  # type: ignore[index]
            datum.loss_fn_inputs["clip_high_threshold"] = np.full(n, 1.05)  # type: ignore[index]
        finite_difference_check(model, datums, "ppo")

    def test_top_k_distillation_targets_are_differentiated(self) -> None:
        """cross_entropy with (N, K) targets and weights has exact gradients."""
        model = perturbed_model()
        rng = np.random.default_rng(4)
        datums = [
            ModelDatum(
                rng.integers(0, 258, 10),
                {"target_tokens": rng.integers(0, 258, (10, 3)), "weights": rng.random((10, 3))},
            )
        ]
        finite_difference_check(model, datums, "cross_entropy")

    @pytest.mark.parametrize(
        ("flags", "expected"),
        [
            ({"train_mlp": False, "train_attn": False}, {"unembed"}),
            ({"train_unembed": False, "train_mlp": False}, {"attn"}),
            ({"train_attn": False}, {"mlp_in", "mlp_out", "unembed"}),
        ],
    )
    def test_train_flags_choose_the_adapted_layers(self, flags, expected) -> None:
        """Only layers whose flag is set carry an adapter, and their gradients check out."""
        model = perturbed_model(**flags)
        assert {key.split("/")[0] for key in model.params} == expected
        datums = random_datums(np.random.default_rng(5), "cross_entropy", model)
        finite_difference_check(model, datums, "cross_entropy")

    def test_gradients_accumulate_until_the_optimizer_step(self) -> None:
        """Two forward_backward calls add up to one call on both datums."""
        model = perturbed_model()
        first, second = random_datums(np.random.default_rng(6), "cross_entropy", model)
        model.forward_backward([first], "cross_entropy")
        model.forward_backward([second], "cross_entropy")
        separate = {k: g.copy() for k, g in model.grads.items()}
        model.zero_grad()
        model.forward_backward([first, second], "cross_entropy")
        for key, grad in model.grads.items():
            np.testing.assert_allclose(separate[key], grad, rtol=1e-10, atol=1e-12)

    def test_forward_leaves_the_gradient_alone(self) -> None:
        """forward computes outputs but accumulates nothing."""
        model = perturbed_model()
        model.forward(
            random_datums(np.random.default_rng(7), "cross_entropy", model), "cross_entropy"
        )
        assert all(not g.any() for g in model.grads.values())


class TestLossOutputs:
    """Per-datum outputs and metrics follow the documented formulas."""

    def test_cross_entropy_reports_logprobs_and_weighted_loss(self) -> None:
        """loss:sum is -sum(weights * logprobs); outputs have the targets' shape."""
        model = LoraModel(rank=4, seed=0)
        datums = random_datums(np.random.default_rng(8), "cross_entropy", model, count=3)
        result = model.forward(datums, "cross_entropy")
        expected = 0.0
        for datum, out in zip(datums, result.loss_fn_outputs, strict=True):
            assert out["logprobs"].dtype == np.float32 and out["logprobs"].shape == (12,)
            assert np.all(out["logprobs"] < 0)
            weighted = -datum.loss_fn_inputs["weights"] * out["logprobs"]
            np.testing.assert_allclose(out["elementwise_loss"], weighted, rtol=1e-5)
            expected += float(weighted.sum())
        assert result.metrics["loss:sum"] == pytest.approx(expected, rel=1e-5)

    @pytest.mark.parametrize("loss_fn", RL_LOSSES)
    def test_policy_losses_follow_their_formulas(self, loss_fn: str) -> None:
        """Each RL loss equals its formula applied to the returned logprobs."""
        model = LoraModel(rank=4, seed=0, dtype=np.float64)
        datums = random_datums(np.random.default_rng(9), loss_fn, model)
        result = model.forward(datums, loss_fn)
        total = 0.0
        for datum, out in zip(datums, result.loss_fn_outputs, strict=True):
            logp = out["logprobs"].astype(np.float64)
            q, adv = datum.loss_fn_inputs["logprobs"], datum.loss_fn_inputs["advantages"]
            ratio = np.exp(logp - q)
            if loss_fn == "importance_sampling":
                loss = -ratio * adv
            elif loss_fn == "ppo":
                loss = -np.minimum(ratio * adv, np.clip(ratio, 0.8, 1.2) * adv)
            elif loss_fn == "cispo":
                loss = -np.clip(ratio, 0.8, 1.2) * logp * adv
            else:
                loss = -(logp * adv - 0.5 * 0.05 * (logp - q) ** 2)
            total += float(loss.sum())
        assert result.metrics["loss:sum"] == pytest.approx(total, rel=1e-5)

    def test_loss_fn_config_changes_the_clip_range(self) -> None:
        """A wider ppo clip range changes the loss when ratios leave the default range."""
        model = LoraModel(rank=4, seed=0)
        datums = random_datums(np.random.default_rng(10), "ppo", model)
        narrow = model.forward(datums, "ppo").metrics["loss:sum"]
        wide = model.forward(
            datums, "ppo", {"clip_low_threshold": 0.1, "clip_high_threshold": 10.0}
        ).metrics["loss:sum"]
        assert narrow != wide

    def test_sampling_logprobs_equal_forward_logprobs(self) -> None:
        """The logprobs a sample reports are what forward computes for the same tokens."""
        model = LoraModel(rank=4, seed=0)
        prompt = TOKENIZER.encode("abc")
        seq = model.sample(prompt, max_tokens=6, seed=3, stop=[]).sequences[0]
        full = prompt + seq.tokens
        out = model.forward(
            [ModelDatum(full[:-1], {"target_tokens": np.array(full[1:])})], "cross_entropy"
        ).loss_fn_outputs[0]["logprobs"]
        np.testing.assert_allclose(out[len(prompt) - 1 :], seq.logprobs, rtol=1e-4, atol=1e-5)


class TestAdam:
    """optim_step is bias-corrected AdamW with global-norm clipping."""

    def _model_with_gradient(self) -> LoraModel:
        model = perturbed_model()
        model.forward_backward(
            random_datums(np.random.default_rng(11), "cross_entropy", model), "cross_entropy"
        )
        return model

    def test_one_step_matches_the_formula(self) -> None:
        """After one step p = p - lr * m_hat / (sqrt(v_hat) + eps), with decoupled decay."""
        model = self._model_with_gradient()
        before = {k: p.copy() for k, p in model.params.items()}
        grads = {k: g.copy() for k, g in model.grads.items()}
        lr, b1, b2, eps, wd = 0.01, 0.8, 0.9, 1e-8, 0.1
        model.optim_step(learning_rate=lr, beta1=b1, beta2=b2, eps=eps, weight_decay=wd)
        for key, p in model.params.items():
            m_hat = (1 - b1) * grads[key] / (1 - b1)
            v_hat = (1 - b2) * grads[key] ** 2 / (1 - b2)
            expected = before[key] * (1 - lr * wd) - lr * m_hat / (np.sqrt(v_hat) + eps)
            np.testing.assert_allclose(p, expected, rtol=1e-10, atol=1e-12)
        assert model.adam_step == 1
        assert all(not g.any() for g in model.grads.values())

    def test_weight_decay_alone_shrinks_the_weights(self) -> None:
        """With no gradient, a step multiplies every weight by 1 - lr * weight_decay."""
        model = perturbed_model()
        before = {k: p.copy() for k, p in model.params.items()}
        model.optim_step(learning_rate=0.1, weight_decay=0.5)
        for key, p in model.params.items():
            np.testing.assert_allclose(p, before[key] * 0.95, rtol=1e-12)

    def test_clipping_scales_the_gradient_to_the_norm(self) -> None:
        """The first moment holds (1 - beta1) * g * max_norm / |g| when clipping binds."""
        model = self._model_with_gradient()
        grads = {k: g.copy() for k, g in model.grads.items()}
        norm = np.sqrt(sum(float((g**2).sum()) for g in grads.values()))
        metrics = model.optim_step(learning_rate=0.01, beta1=0.9, grad_clip_norm=norm / 10)
        assert metrics["grad_norm:mean"] == pytest.approx(norm)
        for key, m in model.adam_m.items():
            np.testing.assert_allclose(m, 0.1 * grads[key] / 10, rtol=1e-9, atol=1e-15)

    def test_clipping_leaves_small_gradients_alone(self) -> None:
        """A norm below grad_clip_norm passes unchanged."""
        model = self._model_with_gradient()
        grads = {k: g.copy() for k, g in model.grads.items()}
        model.optim_step(learning_rate=0.01, beta1=0.9, grad_clip_norm=1e9)
        for key, m in model.adam_m.items():
            np.testing.assert_allclose(m, 0.1 * grads[key], rtol=1e-12)


class TestNonFiniteGradients:
    """A NaN or inf never reaches the weights."""

    def test_nan_gradient_is_refused_and_weights_stay(self) -> None:
        """optim_step raises, keeps weights and Adam state, and discards the gradient."""
        model = perturbed_model()
        model.forward_backward(
            random_datums(np.random.default_rng(12), "cross_entropy", model), "cross_entropy"
        )
        before = model.state()
        next(iter(model.grads.values())).flat[0] = np.nan
        with pytest.raises(NonFiniteGradientError, match="NaN or inf"):
            model.optim_step(learning_rate=0.01)
        after = model.state()
        assert before.keys() == after.keys()
        for key in before:
            np.testing.assert_array_equal(before[key], after[key])
        assert all(not g.any() for g in model.grads.values())
        model.optim_step(learning_rate=0.01)  # the model keeps working
        assert model.adam_step == 1

    @pytest.mark.parametrize("field", ["advantages", "logprobs"])
    def test_non_finite_inputs_are_rejected_before_any_work(self, field: str) -> None:
        """A NaN in a loss input raises ValueError naming the field."""
        model = LoraModel(rank=2, seed=0)
        datum = random_datums(np.random.default_rng(13), "ppo", model, count=1)[0]
        bad = dict(datum.loss_fn_inputs)
        bad[field] = np.array(bad[field], dtype=np.float64)
        bad[field][0] = np.nan
        with pytest.raises(ValueError, match=field):
            model.forward_backward([ModelDatum(datum.tokens, bad)], "ppo")
        assert all(not g.any() for g in model.grads.values())


class TestCheckpoints:
    """State, save and load resume training bit for bit."""

    def test_resumed_training_is_bit_identical(self, tmp_path) -> None:
        """10 steps straight equal 5 steps, save, load into a fresh model, 5 steps."""
        data = [sft_datum(text) for text in PIG_LATIN]

        def steps(model: LoraModel, count: int) -> list[float]:
            losses = []
            for _ in range(count):
                losses.append(model.forward_backward(data, "cross_entropy").metrics["loss:sum"])
                model.optim_step(learning_rate=5e-3, weight_decay=0.01, grad_clip_norm=50.0)
            return losses

        straight = LoraModel(rank=8, seed=42)
        straight_losses = steps(straight, 10)
        first = LoraModel(rank=8, seed=42)
        resumed_losses = steps(first, 5)
        first.save(tmp_path / "ckpt.npz")
        second = LoraModel.from_file(tmp_path / "ckpt.npz")
        resumed_losses += steps(second, 5)
        assert resumed_losses == straight_losses
        final, expected = second.state(), straight.state()
        assert final.keys() == expected.keys()
        for key in final:
            np.testing.assert_array_equal(final[key], expected[key])
        assert [p.name for p in tmp_path.iterdir()] == ["ckpt.npz"]

    def test_loading_without_optimizer_resets_adam(self, tmp_path) -> None:
        """with_optimizer=False keeps the weights and zeroes the moments and step."""
        model = LoraModel(rank=4, seed=1)
        model.forward_backward([sft_datum("abc")], "cross_entropy")
        model.optim_step(learning_rate=0.01)
        model.save(tmp_path / "w.npz")
        fresh = LoraModel(rank=4, seed=1)
        fresh.load(tmp_path / "w.npz", with_optimizer=False)
        np.testing.assert_array_equal(fresh.params["mlp_in/B"], model.params["mlp_in/B"])
        assert fresh.adam_step == 0 and not fresh.adam_m["mlp_in/B"].any()

    def test_weights_only_state_cannot_restore_an_optimizer(self) -> None:
        """Asking for optimizer state a checkpoint lacks names the fix."""
        model = LoraModel(rank=4, seed=1)
        with pytest.raises(ValueError, match="with_optimizer=False"):
            LoraModel(rank=4, seed=1).load_state(model.state(include_optimizer=False))

    @pytest.mark.parametrize(
        "other",
        [{"rank": 8}, {"train_attn": False}, {"spec": "small-byte-lm"}],
    )
    def test_a_state_of_another_config_is_refused(self, other) -> None:
        """Rank, layer set and base model must match; from_state adapts instead."""
        kwargs = {"spec": DEFAULT_BASE_MODEL, "rank": 4, "seed": 1} | other
        state = LoraModel(**kwargs).state()
        with pytest.raises(ValueError, match="same LoRA config"):
            LoraModel(rank=4, seed=1).load_state(state)
        assert LoraModel.from_state(state).lora_config()["rank"] == kwargs["rank"]


class TestLearning:
    """Training is real: loss falls and sampling returns what was learned."""

    def test_cross_entropy_falls_by_a_large_factor(self) -> None:
        """100 steps at lr 1e-2, rank 8 cut the loss on pig-latin pairs at least tenfold."""
        model = LoraModel(rank=8, seed=7)
        data = [sft_datum(text) for text in PIG_LATIN]
        first = model.forward_backward(data, "cross_entropy").metrics["loss:sum"]
        model.optim_step(learning_rate=1e-2)
        for _ in range(99):
            model.forward_backward(data, "cross_entropy")
            model.optim_step(learning_rate=1e-2)
        last = model.forward(data, "cross_entropy").metrics["loss:sum"]
        assert last < first / 10

    @pytest.mark.parametrize("loss_fn", RL_LOSSES)
    def test_policy_losses_raise_the_logprob_of_advantaged_tokens(self, loss_fn: str) -> None:
        """A few steps with positive advantages on one datum make its tokens likelier."""
        model = LoraModel(rank=8, seed=2)
        tokens = np.array(TOKENIZER.encode("reward me"))
        targets = np.roll(tokens, -1)
        plain = [ModelDatum(tokens, {"target_tokens": targets})]
        start = model.forward(plain, "cross_entropy").loss_fn_outputs[0]["logprobs"]
        for _ in range(5):
            own = model.forward(plain, "cross_entropy").loss_fn_outputs[0]["logprobs"]
            datum = ModelDatum(
                tokens,
                {"target_tokens": targets, "logprobs": own, "advantages": np.ones(tokens.size)},
            )
            model.forward_backward([datum], loss_fn)
            model.optim_step(learning_rate=1e-2)
        end = model.forward(plain, "cross_entropy").loss_fn_outputs[0]["logprobs"]
        assert end.sum() > start.sum() + 1.0

    @pytest.mark.parametrize("text", PIG_LATIN)
    def test_greedy_sampling_reproduces_a_trained_completion(self, trained, text) -> None:
        """The prompt 'word -> ' continues with the trained translation and <eos>."""
        prompt, answer = text.split("-> ")
        result = trained.sample(TOKENIZER.encode(prompt + "-> "), max_tokens=20, temperature=0.0)
        seq = result.sequences[0]
        assert TOKENIZER.decode(seq.tokens) == answer + "<eos>"
        assert seq.stop_reason == "stop"


class TestSampling:
    """Each SamplingParams field behaves as the service documents."""

    def test_same_seed_same_tokens(self) -> None:
        """Two calls with one seed agree; another seed differs."""
        model = LoraModel(rank=4, seed=0)
        prompt = TOKENIZER.encode("abc")
        runs = [
            model.sample(prompt, max_tokens=16, seed=s, stop=[], num_samples=2).sequences
            for s in (9, 9, 10)
        ]
        assert [s.tokens for s in runs[0]] == [s.tokens for s in runs[1]]
        assert [s.tokens for s in runs[0]] != [s.tokens for s in runs[2]]

    def test_num_samples_draws_independent_sequences(self) -> None:
        """Each of num_samples sequences follows its own draws."""
        result = LoraModel(rank=4, seed=0).sample(
            [256], max_tokens=8, seed=1, num_samples=4, stop=[]
        )
        assert len({tuple(s.tokens) for s in result.sequences}) == 4

    def test_max_tokens_bounds_the_length(self) -> None:
        """Without a stop, a sequence has exactly max_tokens tokens and reason 'length'."""
        seqs = (
            LoraModel(rank=4, seed=0).sample([256], max_tokens=7, stop=[], num_samples=3).sequences
        )
        assert len(seqs) == 3
        assert all(len(s.tokens) == 7 and s.stop_reason == "length" for s in seqs)

    def test_temperature_zero_and_top_k_one_are_greedy(self) -> None:
        """Greedy decoding picks the argmax; top_k=1 and a tiny top_p do the same."""
        model = LoraModel(rank=4, seed=0)
        prompt = TOKENIZER.encode("xyz")
        greedy = model.sample(prompt, max_tokens=8, temperature=0.0, stop=[]).sequences[0]
        top1 = model.sample(prompt, max_tokens=8, top_k=1, seed=1, stop=[]).sequences[0]
        nucleus = model.sample(prompt, max_tokens=8, top_p=1e-6, seed=2, stop=[]).sequences[0]
        assert greedy.tokens == top1.tokens == nucleus.tokens
        full = prompt + greedy.tokens
        best = model.sample(full, max_tokens=0, topk_prompt_logprobs=1).topk_prompt_logprobs
        assert [row[0][0] for row in best[len(prompt) :]] == greedy.tokens

    def test_top_k_limits_the_candidates(self) -> None:
        """With top_k=5 every first token is among the five likeliest; without, more appear."""
        model = LoraModel(rank=4, seed=0)
        prompt = TOKENIZER.encode("q")
        dist = model.sample([*prompt, 0], max_tokens=0, topk_prompt_logprobs=5)
        top5 = {token for token, _ in dist.topk_prompt_logprobs[-1]}
        limited = model.sample(
            prompt, max_tokens=1, top_k=5, temperature=3.0, seed=1, num_samples=200, stop=[]
        )
        assert {s.tokens[0] for s in limited.sequences} <= top5
        free = model.sample(
            prompt, max_tokens=1, top_k=-1, temperature=3.0, seed=1, num_samples=200, stop=[]
        )
        assert len({s.tokens[0] for s in free.sequences}) > 5
        zero = model.sample(
            prompt, max_tokens=1, top_k=0, temperature=3.0, seed=1, num_samples=200, stop=[]
        )
        assert [s.tokens for s in zero.sequences] == [s.tokens for s in free.sequences]

    def test_top_p_keeps_the_nucleus(self) -> None:
        """Tokens drawn with top_p=0.5 lie in the smallest set holding half the mass."""
        model = LoraModel(rank=4, seed=0)
        prompt = TOKENIZER.encode("q")
        dist = model.sample([*prompt, 0], max_tokens=0, topk_prompt_logprobs=258)
        nucleus, mass = set(), 0.0
        for token, logprob in dist.topk_prompt_logprobs[-1]:
            nucleus.add(token)
            mass += float(np.exp(logprob))
            if mass >= 0.5:
                break
        drawn = model.sample(prompt, max_tokens=1, top_p=0.5, seed=4, num_samples=200, stop=[])
        assert {s.tokens[0] for s in drawn.sequences} <= nucleus

    def test_stop_string_ends_the_sequence_and_is_included(self, trained) -> None:
        """A stop string is matched on the generated bytes and kept in the output."""
        result = trained.sample(
            TOKENIZER.encode("pig -> "), max_tokens=20, temperature=0.0, stop=["pa"]
        )
        seq = result.sequences[0]
        assert TOKENIZER.decode(seq.tokens) == "igpa" and seq.stop_reason == "stop"

    def test_stop_token_ids_end_the_sequence(self) -> None:
        """A stop token id ends the sequence at its first occurrence, included."""
        model = LoraModel(rank=4, seed=0)
        free = model.sample([256], max_tokens=12, seed=5, stop=[]).sequences[0].tokens
        stopped = model.sample([256], max_tokens=12, seed=5, stop=[free[4]]).sequences[0]
        assert stopped.tokens == free[: free.index(free[4]) + 1]
        assert stopped.stop_reason == "stop"

    def test_eos_stops_by_default_and_empty_stop_disables_it(self, trained) -> None:
        """stop=None ends at <eos>; stop=[] keeps generating until max_tokens."""
        prompt = TOKENIZER.encode("world -> ")
        default = trained.sample(prompt, max_tokens=20, temperature=0.0).sequences[0]
        assert default.tokens[-1] == TOKENIZER.eos_token_id
        unlimited = trained.sample(prompt, max_tokens=20, temperature=0.0, stop=[]).sequences[0]
        assert len(unlimited.tokens) == 20 and unlimited.stop_reason == "length"

    def test_prompt_logprobs_match_forward(self) -> None:
        """prompt_logprobs starts with None, then equals forward's logprobs of the prompt."""
        model = LoraModel(rank=4, seed=0)
        prompt = TOKENIZER.encode("hello there")
        result = model.sample(prompt, max_tokens=1, prompt_logprobs=True, topk_prompt_logprobs=3)
        assert result.prompt_logprobs[0] is None and result.topk_prompt_logprobs[0] is None
        forward = model.forward(
            [ModelDatum(prompt[:-1], {"target_tokens": np.array(prompt[1:])})], "cross_entropy"
        ).loss_fn_outputs[0]["logprobs"]
        np.testing.assert_allclose(result.prompt_logprobs[1:], forward, rtol=1e-4, atol=1e-5)
        for row, actual in zip(
            result.topk_prompt_logprobs[1:], result.prompt_logprobs[1:], strict=True
        ):
            values = [lp for _, lp in row]
            assert len(row) == 3 and values == sorted(values, reverse=True)
            assert values[0] >= actual - 1e-9
        assert model.compute_logprobs(prompt) == pytest.approx(result.prompt_logprobs)

    def test_prompt_logprobs_are_omitted_unless_asked(self) -> None:
        """Without the flags both prompt fields are None."""
        result = LoraModel(rank=4, seed=0).sample([1, 2, 3], max_tokens=1)
        assert result.prompt_logprobs is None and result.topk_prompt_logprobs is None

    def test_a_fresh_adapter_samples_like_the_base_model(self, trained) -> None:
        """B starts at zero, so a new adapter equals the base; training changes the output."""
        prompt = TOKENIZER.encode("pig -> ")
        base = LoraModel.base().sample(prompt, max_tokens=10, seed=3, stop=[]).sequences[0]
        fresh = LoraModel(rank=8, seed=11).sample(prompt, max_tokens=10, seed=3, stop=[])
        assert fresh.sequences[0].tokens == base.tokens
        learned = trained.sample(prompt, max_tokens=10, seed=3, stop=[]).sequences[0]
        assert learned.tokens != base.tokens


def _datum(tokens, **inputs) -> ModelDatum:
    return ModelDatum(np.asarray(tokens), {k: np.asarray(v) for k, v in inputs.items()})


class TestValidation:
    """Bad input raises ValueError naming the field, the value and the fix."""

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"rank": 0}, r"rank = 0 is out of range .* use 1\.\.64"),
            ({"rank": 65}, r"rank = 65"),
            ({"spec": "gpt-5"}, r"base_model = 'gpt-5' .* tiny-byte-lm"),
            ({"seed": -1}, r"seed = -1"),
        ],
    )
    def test_model_creation_errors(self, kwargs, match) -> None:
        """Unknown base models and ranks outside 1..max_rank are refused."""
        with pytest.raises(ValueError, match=match):
            LoraModel(**kwargs)

    @pytest.mark.parametrize(
        ("loss_fn", "datum", "config", "match"),
        [
            ("cross_entropy", _datum([1, 300], target_tokens=[1, 2]), None, r"tokens\[1\] = 300"),
            ("cross_entropy", _datum([1, 2], target_tokens=[1, 258]), None, r"holds 258"),
            ("cross_entropy", _datum([1, 2, 3], target_tokens=[1, 2]), None, r"shape \(2,\)"),
            ("cross_entropy", _datum([1, 2], target_tokens=[1, 2], weights=[1.0]), None, "weights"),
            ("cross_entropy", _datum([], target_tokens=[]), None, "empty"),
            ("cross_entropy", _datum([1], target_tokens=[2], advantages=[1.0]), None, "advantages"),
            ("ppo", _datum([1], target_tokens=[2], logprobs=[-1.0]), None, "lacks 'advantages'"),
            ("dro", _datum([1], target_tokens=[2]), None, "lacks 'logprobs'"),
            (
                "ppo",
                _datum([1], target_tokens=[2], logprobs=["x"], advantages=[1.0]),
                None,
                "'logprobs'.* not numeric",
            ),
            ("mse", _datum([1], target_tokens=[2]), None, "loss_fn = 'mse'"),
            ("cross_entropy", _datum([1], target_tokens=[2]), {"beta": 1.0}, "beta"),
            ("dro", _datum([1], target_tokens=[2]), {"beta": "x"}, "must be a number"),
            ("ppo", _datum([1], target_tokens=[2]), {"clip_low_threshold": 2.0}, "clip"),
        ],
    )
    def test_forward_backward_errors(self, loss_fn, datum, config, match) -> None:
        """Each malformed request names its field; nothing is accumulated."""
        model = LoraModel(rank=2, seed=0)
        with pytest.raises(ValueError, match=match):
            model.forward_backward([datum], loss_fn, config)
        assert all(not g.any() for g in model.grads.values())

    def test_too_long_sequences_are_refused(self) -> None:
        """A sequence beyond max_seq_len names the limit."""
        model = LoraModel(rank=2, seed=0)
        n = model.spec.max_seq_len + 1
        with pytest.raises(ValueError, match=f"{n} tokens, more than the {n - 1}"):
            model.forward([_datum(np.ones(n, int), target_tokens=np.ones(n, int))], "cross_entropy")

    def test_empty_data_is_refused(self) -> None:
        """forward_backward needs at least one datum."""
        with pytest.raises(ValueError, match="data is empty"):
            LoraModel(rank=2, seed=0).forward_backward([], "cross_entropy")

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"temperature": -1.0}, "temperature"),
            ({"top_p": 0.0}, "top_p"),
            ({"top_k": 1.5}, "top_k"),
            ({"max_tokens": 9000}, "max_tokens = 9000"),
            ({"num_samples": 0}, "num_samples"),
            ({"stop": ["a", 3]}, "not a mix"),
            ({"stop": [999]}, r"stop\[0\] = 999"),
            ({"stop": [""]}, "empty string"),
            ({"topk_prompt_logprobs": -1}, "topk_prompt_logprobs"),
            ({"topk_prompt_logprobs": 2.5}, "topk_prompt_logprobs"),
            ({"max_tokens": -1}, "max_tokens = -1"),
            ({"prompt_tokens": []}, "prompt is empty"),
            ({"prompt_tokens": [1, 258]}, r"prompt\[1\] = 258"),
        ],
    )
    def test_sampling_errors(self, kwargs, match) -> None:
        """Each bad sampling parameter is named."""
        args = {"prompt_tokens": [1, 2], "max_tokens": 4} | kwargs
        with pytest.raises(ValueError, match=match):
            LoraModel(rank=2, seed=0).sample(**args)

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"learning_rate": -1.0}, "learning_rate"),
            ({"beta1": 1.0}, "beta1"),
            ({"beta2": float("nan")}, "beta2"),
            ({"eps": 0.0}, "eps"),
            ({"weight_decay": -0.1}, "weight_decay"),
            ({"grad_clip_norm": -1.0}, "grad_clip_norm"),
        ],
    )
    def test_optimizer_errors(self, kwargs, match) -> None:
        """Each bad AdamParams field is named and the model is unchanged."""
        model = LoraModel(rank=2, seed=0)
        with pytest.raises(ValueError, match=match):
            model.optim_step(**kwargs)
        assert model.adam_step == 0
