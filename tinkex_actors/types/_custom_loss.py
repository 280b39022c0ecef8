"""Server-side custom losses: a traced loss graph as plain data (`create_custom_loss`)."""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

from ._base import WireStruct, sent, sent_list

__all__ = [
    "CreateCustomLossRequest",
    "CreateCustomLossResponse",
    "CustomLossGraph",
    "CustomLossInput",
    "CustomLossInputRank",
    "CustomLossNode",
    "CustomLossNodeOp",
]

CustomLossNodeOp: TypeAlias = Literal[
    "placeholder", "get_attr", "call_function", "call_method", "call_module", "output"
]
CustomLossInputRank: TypeAlias = Literal[0, 1, 2]
_OPS = ("placeholder", "get_attr", "call_function", "call_method", "call_module", "output")


class CustomLossNode(WireStruct, frozen=True):
    """One node of a traced loss, as torch.fx records it; `args`/`kwargs` are encoded JSON."""

    op: CustomLossNodeOp
    name: str
    target: str
    args: list[Any] = sent_list()
    kwargs: dict[str, Any] = sent({})

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(f"CustomLossNode.op must be one of {list(_OPS)}, got {self.op!r}")


class CustomLossGraph(WireStruct, frozen=True):
    """The nodes of a traced loss in execution order (format 1)."""

    nodes: list[CustomLossNode]
    format: Literal[1] = sent(1)


class CustomLossInput(WireStruct, frozen=True):
    """One input of a custom loss (`logprobs` or a loss_fn_inputs key) and its rank."""

    name: str
    rank: CustomLossInputRank

    def __post_init__(self) -> None:
        if self.rank not in (0, 1, 2):
            raise ValueError(
                f"CustomLossInput.rank must be 0 (scalar), 1 ([T]) or 2 ([T, K]), "
                f"got {self.rank!r}"
            )


class CreateCustomLossRequest(WireStruct, frozen=True):
    """`POST create_custom_loss`: store a traced loss for this session."""

    session_id: str
    custom_loss_seq_id: int
    name: str
    inputs: list[CustomLossInput]
    graph: CustomLossGraph
    type: Literal["create_custom_loss"] = sent("create_custom_loss")


class CreateCustomLossResponse(WireStruct, frozen=True):
    """The id that names the stored loss in forward_backward requests."""

    loss_id: str
    type: Literal["create_custom_loss"] = sent("create_custom_loss")
