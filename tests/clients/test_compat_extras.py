"""Small official 0.38 names against the embedded server: checkpoint console links and the
chunk byte hooks (issue 15)."""

from __future__ import annotations

import base64

import msgspec
import pytest
import tinker

from tests.clients._live import BASE, WAIT_S
from tinkex_actors import types
from tinkex_actors.clients.training import TrainingClient
from tinkex_actors.service.service_client import ServiceClient


class TestCheckpointLinks:
    def test_saved_checkpoints_link_where_the_official_responses_link(
        self, trainer: TrainingClient
    ) -> None:
        """get_console_url / get_playground_url of real saves equal the official SDK's URLs."""
        state = trainer.save_state("step:1").result(WAIT_S)
        sampler = trainer.save_weights_for_sampler("s:1").result(WAIT_S)
        official_state = tinker.types.SaveWeightsResponse(path=state.path)
        official_sampler = tinker.types.SaveWeightsForSamplerResponse(path=sampler.path)
        assert state.get_console_url() == official_state.get_console_url()
        assert sampler.get_console_url() == official_sampler.get_console_url()
        assert sampler.get_playground_url() == official_sampler.get_playground_url()
        assert "/checkpoints/" in state.get_console_url() and "step%3A1" in state.get_console_url()

    def test_a_malformed_path_is_refused_naming_it(self) -> None:
        """A response whose path is not a tinker path raises ValueError naming the path."""
        with pytest.raises(ValueError, match="not-a-path"):
            types.SaveWeightsResponse(path="not-a-path").get_console_url()


class TestChunkByteHooks:
    @pytest.mark.parametrize(
        ("chunk_type", "official_type", "field", "validate", "serialize"),
        [
            (types.ImageChunk, tinker.types.ImageChunk, "data", "validate_data", "serialize_data"),
            (types.DmelChunk, tinker.types.DmelChunk, "dmel", "validate_dmel", "serialize_dmel"),
        ],
    )
    def test_hooks_give_the_wire_text_and_read_it_back(
        self, chunk_type: type, official_type: type, field: str, validate: str, serialize: str
    ) -> None:
        """serialize_* is the base64 the JSON wire carries; validate_* turns it back to bytes."""
        raw = bytes([0, 2, 3, 0xFE, 0xFF])
        extra = {"format": "png"} if field == "data" else {}
        chunk = chunk_type(**{field: raw}, **extra)
        text = getattr(chunk, serialize)(raw)
        assert text == msgspec.json.decode(msgspec.json.encode(chunk))[field]
        assert text == getattr(official_type(**{field: raw}, **extra), serialize)(raw)
        assert getattr(chunk_type, validate)(text) == raw
        assert getattr(chunk_type, validate)(raw) == raw
        assert getattr(chunk_type, validate)(base64.b64encode(b"x").decode()) == b"x"

    def test_validate_refuses_text_that_is_not_base64(self) -> None:
        """validate_data on a non-base64 str raises ValueError naming the field."""
        with pytest.raises(ValueError, match=r"ImageChunk\.data"):
            types.ImageChunk.validate_data("not base64!")


class TestOfficialFutureNames:
    def test_real_futures_are_instances_of_the_official_future_classes(
        self, service: ServiceClient, trainer: TrainingClient
    ) -> None:
        """Call futures are AwaitableConcurrentFuture; creation futures BackcompatClientFuture."""
        from tinkex_actors.lib.public_interfaces.api_future import AwaitableConcurrentFuture
        from tinkex_actors.lib.public_interfaces.backcompat_client_future import (
            BackcompatClientFuture,
        )

        saved = trainer.save_state("aliases")
        assert isinstance(saved, AwaitableConcurrentFuture)
        assert saved.result(WAIT_S).path.endswith("/weights/aliases")
        pending = service.create_sampling_client(base_model=BASE)
        assert isinstance(pending, BackcompatClientFuture)
        assert pending.result(WAIT_S).get_base_model() == BASE
