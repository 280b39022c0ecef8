"""The official SDK's public surface, compared name by name with ours.

`differences()` lists every way `tinkex_actors` differs from official `tinker` 0.38 where
user code can tell: a top-level or `tinker.types` name or module path missing, a class
method missing, a method's parameters (names, kinds, defaults) or return annotation
different, a type's field missing. Each difference has a stable key; the compat test
fails on any key not in `allowlist.toml`. `python -m tests.compat.surface` prints the
surface figure and the differences.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
import tomllib
import types as pytypes
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import tinkex_actors

ALLOWLIST = Path(__file__).with_name("allowlist.toml")

# The clients whose methods make the surface figure (issue 15: "100 methods").
CLIENTS = ("ServiceClient", "TrainingClient", "SamplingClient", "RestClient")

# Spellings that mean the same type on both sides.
_SAME_TYPE = [
    (r"\btyping\.", ""),
    (r"\btypes\.", ""),
    (r"\btinker\.", ""),
    (r"\bList\[", "list["),
    (r"\bDict\[", "dict["),
    (r"\bSequence\[", "list["),
    (r"\bAPIFuture\[", "Future["),
    (r"\bAwaitableConcurrentFuture\[", "Future["),
    (r"\bBackcompatSamplingClientFuture\b", "ClientFuture[SamplingClient]"),
    (r"\bBackcompatTrainingClientFuture\b", "ClientFuture[TrainingClient]"),
    (r"\bConcurrentFuture\[", "concurrent.futures.Future["),
]


def normalise(annotation: Any) -> str:
    """An annotation as comparable text (our and official spellings of one type agree)."""
    if annotation is inspect.Signature.empty:
        return ""
    text = annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)
    text = re.sub(r"Optional\[(.+)\]$", r"\1 | None", text)
    for pattern, repl in _SAME_TYPE:
        text = re.sub(pattern, repl, text)
    return text.replace(" ", "")


@dataclass
class Figure:
    """Method counts over the official clients (`CLIENTS`)."""

    total: int = 0
    present: int = 0
    signatures: int = 0
    returns: int = 0

    def __str__(self) -> str:
        return (
            f"official surface ({', '.join(CLIENTS)}): {self.total} methods; present "
            f"{self.present}/{self.total}, signatures matching {self.signatures}/{self.total}, "
            f"return types matching {self.returns}/{self.total}"
        )


@dataclass
class Report:
    """Every difference (key -> what differs) and the surface figure."""

    differences: dict[str, str] = field(default_factory=dict)
    figure: Figure = field(default_factory=Figure)


def _official_methods(cls: type) -> dict[str, Any]:
    """Public callables the official class defines itself or inherits from tinker's bases."""
    found: dict[str, Any] = {}
    for name in dir(cls):
        if name.startswith("_"):
            continue
        for klass in cls.__mro__:
            if name in vars(klass):
                raw = vars(klass)[name]
                if klass.__module__.startswith("tinker") and (
                    callable(raw) or isinstance(raw, staticmethod | classmethod)
                ):
                    found[name] = getattr(cls, name)
                break
    return found


def _params(sig: inspect.Signature) -> list[tuple[str, str, str]]:
    out = []
    for p in sig.parameters.values():
        if p.name in ("self", "cls"):
            continue
        default = "" if p.default is inspect.Parameter.empty else repr(p.default)
        out.append((p.name, p.kind.name, default))
    return out


def _signature(fn: Any) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):
        return None


def _compare_class(
    label: str, theirs: type, ours: type | None, report: Report, counted: bool
) -> None:
    methods = _official_methods(theirs)
    fig = report.figure
    for name, their_fn in sorted(methods.items()):
        key = f"{label}.{name}"
        if counted:
            fig.total += 1
        our_fn = getattr(ours, name, None) if ours is not None else None
        if our_fn is None or not callable(our_fn):
            report.differences[f"missing-method:{key}"] = "not defined on ours"
            continue
        if counted:
            fig.present += 1
        their_sig, our_sig = _signature(their_fn), _signature(our_fn)
        if their_sig is None or our_sig is None:
            continue
        if _params(their_sig) == _params(our_sig):
            if counted:
                fig.signatures += 1
        else:
            report.differences[f"params:{key}"] = (
                f"official {_params(their_sig)} ours {_params(our_sig)}"
            )
        t_ret, o_ret = normalise(their_sig.return_annotation), normalise(our_sig.return_annotation)
        if t_ret == o_ret:
            if counted:
                fig.returns += 1
        else:
            report.differences[f"returns:{key}"] = f"official {t_ret} ours {o_ret}"


def _fields(cls: type) -> list[str]:
    model_fields = getattr(cls, "model_fields", None)
    if isinstance(model_fields, dict):
        return list(model_fields)
    fields = getattr(cls, "__dataclass_fields__", None)
    if isinstance(fields, dict):
        return [f for f in fields if not f.startswith("_")]
    return []


def _compare_fields(label: str, theirs: type, ours: Any, report: Report) -> None:
    for name in _fields(theirs):
        if not hasattr(ours, name) and name not in getattr(ours, "__struct_encode_fields__", ()):
            report.differences[f"missing-field:{label}.{name}"] = "no such field or attribute"


def _public(module: pytypes.ModuleType) -> dict[str, Any]:
    """A module's `__all__`, else the public classes and functions it defines itself."""
    names = getattr(module, "__all__", None)
    if names is None and hasattr(module, "__path__"):  # a package re-exports its modules' names
        names = [n for n in vars(module) if not n.startswith("_")]
    elif names is None:
        names = [
            n
            for n, v in vars(module).items()
            if not n.startswith("_")
            and not isinstance(v, TypeVar)
            and getattr(v, "__module__", None) == module.__name__
        ]
    return {n: getattr(module, n) for n in names if hasattr(module, n)}


def _compare_module(path: str, theirs: pytypes.ModuleType, report: Report) -> None:
    our_path = "tinkex_actors" + path[len("tinker") :]
    try:
        ours = importlib.import_module(our_path)
    except ImportError:
        report.differences[f"missing-module:{path}"] = f"{our_path} cannot be imported"
        return
    for name, value in _public(theirs).items():
        if isinstance(value, pytypes.ModuleType):
            continue
        if not hasattr(ours, name):
            report.differences[f"missing-name:{path}.{name}"] = f"not in {our_path}"


def compare() -> Report:
    """Compare the installed official SDK with ours; the official package must import."""
    import tinker
    import tinker.lib.public_interfaces as official_interfaces
    import tinker.types as official_types

    report = Report()
    for name in tinker.__all__:
        if not hasattr(tinkex_actors, name):
            report.differences[f"missing-name:tinker.{name}"] = "not in tinkex_actors"
    _compare_module("tinker.types", official_types, report)
    for name, value in sorted(vars(official_types).items()):
        if isinstance(value, pytypes.ModuleType) and not name.startswith("_"):
            _compare_module(f"tinker.types.{name}", value, report)
    _compare_module("tinker.lib.public_interfaces", official_interfaces, report)
    for name in sorted(sys.modules):
        if name.startswith("tinker.lib.public_interfaces."):
            _compare_module(name, sys.modules[name], report)

    for name in CLIENTS:
        ours = getattr(tinkex_actors, name, None)
        _compare_class(name, getattr(tinker, name), ours, report, counted=True)
    for name, value in sorted(_public(official_types).items()):
        if isinstance(value, type) and value.__module__.startswith("tinker"):
            our_type = getattr(tinkex_actors.types, name, None)
            _compare_class(f"types.{name}", value, our_type, report, counted=False)
            if our_type is not None:
                _compare_fields(f"types.{name}", value, our_type, report)
    return report


def allowlist() -> dict[str, str]:
    """The reviewed differences: key -> reason."""
    with ALLOWLIST.open("rb") as fh:
        entries: dict[str, str] = tomllib.load(fh)["allowed"]
    return entries


def main() -> int:
    """Print the figure, then each difference with its allow-list reason (or UNLISTED)."""
    report = compare()
    allowed = allowlist()
    print(report.figure)
    for key, what in sorted(report.differences.items()):
        print(f"{key}: {what}\n    -> {allowed.get(key, 'UNLISTED')}")
    stale = sorted(set(allowed) - set(report.differences))
    for key in stale:
        print(f"STALE allow-list entry (fixed, delete it): {key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
