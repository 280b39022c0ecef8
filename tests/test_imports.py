"""Import rules read from the source with ``ast``: pykka's public API only, no cycles.

``supervisors`` and ``tinkex_actors`` may use pykka's public names and the extension points
pykka documents for actor implementations, but never a private pykka module or name, and never
assign to anything of pykka (no patching). Inside ``supervisors`` no two modules import each
other, directly or around a longer loop.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECKED_PACKAGES = ("supervisors", "tinkex_actors")


def _is_private_pykka_module(module: str) -> bool:
    return module.startswith("pykka.") and any(
        part.startswith("_") for part in module.split(".")[1:]
    )


def _root_name(node: ast.expr) -> str | None:
    """The name an attribute chain starts from (``a`` for ``a.b.c``), or None."""
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def pykka_violations(source: str, filename: str = "<source>") -> list[str]:
    """Every private pykka import or use, and every assignment to something of pykka."""
    tree = ast.parse(source, filename)
    found: list[str] = []
    pykka_names: set[str] = set()  # names bound to pykka or to something taken from it
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "pykka" or alias.name.startswith("pykka."):
                    pykka_names.add((alias.asname or alias.name).split(".")[0])
                    if _is_private_pykka_module(alias.name):
                        found.append(f"{filename}:{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            if node.module != "pykka" and not node.module.startswith("pykka."):
                continue
            if _is_private_pykka_module(node.module):
                found.append(f"{filename}:{node.lineno}: from {node.module} import ...")
            for alias in node.names:
                pykka_names.add(alias.asname or alias.name)
                if alias.name.startswith("_"):
                    found.append(f"{filename}:{node.lineno}: imports private {alias.name}")
    changed = True
    while changed:  # follow aliases: `registry = pykka.ActorRegistry`
        changed = False
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and _root_name(node.value) in pykka_names:
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id not in pykka_names:
                        pykka_names.add(target.id)
                        changed = True
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and isinstance(node.value, ast.Name)
            and node.value.id in pykka_names
        ):
            found.append(f"{filename}:{node.lineno}: uses private {node.value.id}.{node.attr}")
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = list(node.targets)
        for target in targets:
            if isinstance(target, ast.Attribute) and (
                _root_name(target) in pykka_names or target.attr == "__class__"
            ):
                found.append(f"{filename}:{node.lineno}: assigns {ast.unparse(target)}")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("setattr", "delattr")
            and node.args
            and _root_name(node.args[0]) in pykka_names
        ):
            found.append(f"{filename}:{node.lineno}: {node.func.id} on {ast.unparse(node.args[0])}")
    return found


def _modules(package: str) -> dict[str, Path]:
    base = ROOT / package
    names = {}
    for path in sorted(base.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _imported_modules(path: Path, module: str, known: set[str]) -> set[str]:
    """The modules of ``known`` that ``module`` imports anywhere (lazily or for typing too)."""
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            for alias in node.names:
                if f"{source}.{alias.name}" in known:
                    found.add(f"{source}.{alias.name}")
                elif source in known:
                    found.add(source)
    found.discard(module)
    return found


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle of ``graph`` (module -> imported modules), each listed once."""
    cycles: list[list[str]] = []
    seen: set[tuple[str, ...]] = set()

    def walk(node: str, trail: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt in trail:
                cycle = trail[trail.index(nxt):]
                key = tuple(sorted(cycle))
                if key not in seen:
                    seen.add(key)
                    cycles.append([*cycle, nxt])
            else:
                walk(nxt, [*trail, nxt])

    for start in sorted(graph):
        walk(start, [start])
    return cycles


class TestPykkaPublicApiOnly:
    """Our packages use pykka's public API only and patch nothing of it."""

    @pytest.mark.parametrize("package", CHECKED_PACKAGES)
    def test_no_private_pykka_and_no_assignment_to_pykka(self, package):
        """No pykka._ import, private pykka name, or assignment to a pykka attribute."""
        found = []
        for path in sorted((ROOT / package).rglob("*.py")):
            found += pykka_violations(path.read_text(), str(path.relative_to(ROOT)))
        assert found == []

    @pytest.mark.parametrize(
        "planted",
        [
            "from pykka._envelope import Envelope",
            "import pykka._envelope",
            "from pykka.messages import _ActorStop",
            "import pykka\nx = pykka._envelope.Envelope",
            "import pykka\npykka.ActorRegistry.stop_all = classmethod(lambda cls: None)",
            "import pykka\nregistry = pykka.ActorRegistry\nregistry.stop_all = None",
            "from pykka import ActorRegistry\nActorRegistry.stop_all = None",
            "from pykka import ThreadingActor as T\nsetattr(T, 'use_daemon_thread', True)",
            "def f(ref):\n    ref.actor_stopped.__class__ = object",
        ],
    )
    def test_each_planted_violation_is_found(self, planted):
        """The checker reports private imports, private uses and every way of patching."""
        assert pykka_violations(planted) != []

    def test_public_use_is_not_reported(self):
        """Public names, proxies' message types and our own attributes pass."""
        source = (
            "import pykka\nfrom pykka import ActorRef, ThreadingActor\n"
            "from pykka.messages import ProxyCall\n"
            "class A(ThreadingActor):\n    def __init__(self):\n        super().__init__()\n"
            "        self.x = 1\nref = A.start()\nref.tell(ProxyCall(('x',), (), {}))\n"
        )
        assert pykka_violations(source) == []


class TestNoImportCycles:
    """Modules of supervisors import one way."""

    def test_supervisors_has_no_import_cycle(self):
        """No module of supervisors imports one that imports it back, at any depth."""
        modules = _modules("supervisors")
        known = set(modules)
        graph = {name: _imported_modules(path, name, known) for name, path in modules.items()}
        graph.pop("supervisors")  # the package only re-exports its modules
        for deps in graph.values():
            deps.discard("supervisors")
        assert import_cycles(graph) == []

    def test_a_planted_cycle_is_found(self):
        """The cycle finder reports a loop of two and of three modules."""
        assert import_cycles({"a": {"b"}, "b": {"a"}}) == [["a", "b", "a"]]
        assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [
            ["a", "b", "c", "a"]
        ]
