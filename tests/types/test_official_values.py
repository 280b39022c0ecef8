"""Values behave as the official SDK's do where user code can tell: lists, ownership, torch."""

from __future__ import annotations

import json

import numpy as np
import pytest

import tinkex_actors.types as tx
from tinkex_actors.types import proto

official = pytest.importorskip("tinker.types")


class TestTensorDataHoldsLists:
    def test_data_is_a_list_of_python_numbers_like_the_official(self):
        """`.data` gives plain ints/floats, so a value from it goes into JSON metrics."""
        for values, dtype in (([1.5, -2.0], "float32"), ([3, 4], "int64")):
            ours = tx.TensorData.from_numpy(np.asarray(values, dtype=dtype))
            theirs = official.TensorData.from_numpy(np.asarray(values, dtype=dtype))
            assert type(ours.data) is list and ours.data == theirs.data
            assert [type(v) for v in ours.data] == [type(v) for v in theirs.data]
            assert json.loads(json.dumps({"m": sum(ours.data)})) == {"m": sum(theirs.data)}

    def test_editing_the_returned_list_leaves_the_tensor_alone(self):
        """Each read of `.data` is a new list, as official; the tensor does not change."""
        td = tx.TensorData(data=[1.0, 2.0], dtype="float32")
        td.data.append(3.0)
        td.data[0] = 9.0
        assert td.data == [1.0, 2.0] and tx.to_json(td) == b'{"data":[1.0,2.0],"dtype":"float32"}'

    def test_the_array_fast_path_stays_an_array_without_a_copy(self):
        """`data_np` is the flat array the codecs read; a frombuffer array is used as is."""
        buf = np.arange(6, dtype=np.float32).tobytes()
        view = np.frombuffer(buf, dtype=np.float32)
        td = tx.TensorData(data=view, dtype="float32", shape=[2, 3])
        assert td.data_np is view and td.to_numpy().shape == (2, 3)
        assert td.data == view.tolist() and td.tolist() == view.reshape(2, 3).tolist()

    def test_binary_and_json_round_trips_still_read_lists(self):
        """A tensor decoded from either wire reads `.data` as a list equal to what was sent."""
        datum = tx.Datum(
            model_input=tx.ModelInput.from_ints([1, 2, 3]),
            loss_fn_inputs={"weights": [0.5, 1.0, 0.0], "target_tokens": [2, 3, 4]},
        )
        fbi = tx.ForwardBackwardInput(data=[datum], loss_fn="cross_entropy")
        body = proto.encode_forward_backward_request(fbi, model_id="m", seq_id=1)
        (decoded,) = proto.decode_forward_backward_request(body).forward_backward_input.data
        from_json = tx.from_json(tx.to_json(datum), tx.Datum)
        for got in (decoded, from_json):
            assert got.loss_fn_inputs["weights"].data == [0.5, 1.0, 0.0]
            assert got.loss_fn_inputs["target_tokens"].data == [2, 3, 4]


class TestValuesOwnTheirLists:
    def test_a_text_chunk_keeps_its_tokens_when_the_caller_clears_the_list(self):
        """EncodedTextChunk(tokens=lst) then lst.clear(): the chunk, JSON and binary keep them."""
        tokens = [5, 6, 7]
        chunk = tx.EncodedTextChunk(tokens=tokens)
        tokens.clear()
        assert chunk.tokens == [5, 6, 7] and chunk.length == 3
        assert tx.to_json(chunk) == b'{"type":"encoded_text","tokens":[5,6,7]}'
        assert chunk.packed_int32().tolist() == [5, 6, 7]

    def test_from_ints_keeps_its_tokens_when_the_caller_reuses_the_list(self):
        """ModelInput.from_ints(lst) then editing lst: the prompt is unchanged."""
        tokens = [1, 2, 3, 4]
        prompt = tx.ModelInput.from_ints(tokens)
        tokens[:] = [9]
        assert prompt.to_ints() == [1, 2, 3, 4] and prompt.length == 4

    def test_tokens_read_as_a_list_after_pickle_copy_and_json(self):
        """A chunk built from a list gives lists after pickling, copying or a JSON round trip."""
        import copy
        import pickle

        chunk = tx.EncodedTextChunk(tokens=[3, 1, 2])
        copies = [
            pickle.loads(pickle.dumps(chunk)), copy.copy(chunk), copy.deepcopy(chunk),
            tx.from_json(tx.to_json(chunk), tx.EncodedTextChunk),
        ]
        for other in copies:
            assert type(other.tokens) is list and other.tokens == [3, 1, 2] and other == chunk
            assert other.packed_int32().tolist() == [3, 1, 2]
        assert repr(chunk) == "EncodedTextChunk(tokens=[3, 1, 2])"

    def test_a_tensor_keeps_its_values_when_the_caller_edits_the_list(self):
        """TensorData(data=lst) packs its own array; the caller's later edits do not reach it."""
        values = [1.0, 2.0]
        td = tx.TensorData(data=values, dtype="float32")
        values[0] = 7.0
        assert td.data == [1.0, 2.0]


class TestTorchConversions:
    def test_without_torch_each_conversion_names_the_extra(self):
        """from_torch / to_torch / from_torch_sparse say torch is missing and how to get it."""
        try:
            import torch  # noqa: F401
        except ImportError:
            pass
        else:
            pytest.skip("torch is installed: the conversions are tested below")
        td = tx.TensorData(data=[1], dtype="int64")
        calls = {
            "to_torch": td.to_torch,
            "from_torch": lambda: tx.TensorData.from_torch(object()),
            "from_torch_sparse": lambda: tx.TensorData.from_torch_sparse(object()),
        }
        for name, call in calls.items():
            with pytest.raises(ImportError, match=rf"TensorData\.{name}.*tinkex-actors\[torch\]"):
                call()

    def test_dense_round_trip_matches_the_official(self):
        """from_torch/to_torch give the official dtypes, shapes and values (bfloat16 widened)."""
        torch = pytest.importorskip("torch")
        for tensor in (
            torch.arange(6, dtype=torch.int32).reshape(2, 3),
            torch.tensor([[0.5, -1.0]], dtype=torch.bfloat16),
        ):
            ours = tx.TensorData.from_torch(tensor)
            theirs = official.TensorData.from_torch(tensor)
            assert (ours.dtype, ours.shape, ours.data) == (theirs.dtype, theirs.shape, theirs.data)
            assert torch.equal(ours.to_torch(), theirs.to_torch())

    def test_sparse_csr_matches_the_official_encoding_and_densifies_back(self):
        """from_torch_sparse picks CSR as official does, with the same indices and pad."""
        torch = pytest.importorskip("torch")
        dense = torch.full((4, 6), -1, dtype=torch.int64)
        dense[0, 2], dense[3, 5] = 7, 8
        for pad, tensor in ((-1, dense), (0, torch.eye(5))):
            ours = tx.TensorData.from_torch_sparse(tensor, pad_value=pad)
            theirs = official.TensorData.from_torch_sparse(tensor, pad_value=pad)
            assert ours.sparse_crow_indices == theirs.sparse_crow_indices
            assert ours.sparse_col_indices == theirs.sparse_col_indices
            assert ours.data == theirs.data and ours.shape == theirs.shape
            assert torch.equal(ours.to_torch(pad_value=pad), tensor.to(ours.to_torch().dtype))
        mostly_full = tx.TensorData.from_torch_sparse(torch.ones(2, 2))
        assert mostly_full.sparse_crow_indices is None

    def test_sparse_pad_value_must_be_an_integer(self):
        """A float or bool pad_value is refused with the field named, as official."""
        td = tx.TensorData(
            data=[1.0], dtype="float32", shape=[1, 2],
            sparse_crow_indices=[0, 1], sparse_col_indices=[1],
        )
        assert td.to_numpy(pad_value=3).tolist() == [[3.0, 1.0]]
        for bad in (0.5, True):
            with pytest.raises(TypeError, match="pad_value must be an integer"):
                td.to_numpy(pad_value=bad)


class TestOfficialModulePaths:
    def test_each_official_type_module_path_imports_with_the_same_objects(self):
        """`tinkex_actors.types.<module>` exists for every `tinker.types.<module>`."""
        import importlib
        import importlib.util
        import types as pytypes

        modules = [
            n for n, v in vars(official).items()
            if isinstance(v, pytypes.ModuleType) and not n.startswith("_")
        ]
        assert len(modules) > 100
        for name in modules:
            ours = importlib.import_module(f"tinkex_actors.types.{name}")
            assert importlib.util.find_spec(f"tinkex_actors.types.{name}") is not None
            for attr in ours.__all__:
                assert getattr(ours, attr) is getattr(tx, attr), (name, attr)

    def test_the_public_interfaces_paths_give_our_clients(self):
        """`lib.public_interfaces` and its per-client modules name our classes."""
        from tinkex_actors.lib.public_interfaces.sampling_client import SamplingClient

        import tinkex_actors as top
        from tinkex_actors.lib.public_interfaces import APIFuture, TrainingClient

        assert (APIFuture, TrainingClient, SamplingClient) == (
            top.Future, top.TrainingClient, top.SamplingClient
        )
