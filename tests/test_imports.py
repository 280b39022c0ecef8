"""Import rules read from the source with ``ast``: pykka's public API only, layers, no cycles.

``supervisors`` and ``tinkex_actors`` may use pykka's public names and the extension points
pykka documents for actor implementations, but never a private pykka module or name, and never
assign to anything of pykka (no patching). Inside ``supervisors`` no two modules import each
other, directly or around a longer loop.

The layers of DESIGN.md section 2 (drawn in docs/architecture.md): ``supervisors`` knows nothing
of Tinker; ``types`` is the shared vocabulary and imports nothing else of ours; the embedded
server (``local``) shares only ``types`` with the client, and the client reaches it only through
one late-bound factory (the command line and the demo start it on purpose); nobody imports a
private module of another package, nor a private name of another module; nothing imports the
command line; ``tinkex_actors`` has no import cycle. What breaks a rule today and lives in code
being reworked elsewhere is in ``ALLOWED``, one line and one reason each, to shrink as it is fixed.
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


def _modules(package: str, root: Path = ROOT) -> dict[str, Path]:
    base = root / package
    names = {}
    for path in sorted(base.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _from_imports(path: Path, module: str) -> list[tuple[str, str]]:
    """``(source, name)`` of each ``from source import name`` in ``module``, relative resolved."""
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    pairs: list[tuple[str, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            pairs += [(source, alias.name) for alias in node.names]
    return pairs


def _imported_modules(path: Path, module: str, known: set[str]) -> set[str]:
    """The modules of ``known`` that ``module`` imports anywhere (lazily or for typing too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in known)
    for source, name in _from_imports(path, module):
        if f"{source}.{name}" in known:
            found.add(f"{source}.{name}")
        elif source in known:
            found.add(source)
    found.discard(module)
    return found


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One import cycle per knot of ``graph`` (module -> imported modules).

    A knot is a strongly connected component (Tarjan); its cycle is the shortest loop through
    its smallest module, found breadth-first, so the text does not depend on the walk. Linear
    in the graph's size: a planted edge that ties dozens of modules together stays cheap.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    nodes = sorted(set(graph) | {n for deps in graph.values() for n in deps})

    for root in nodes:  # iterative Tarjan: no recursion limit on a long chain
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(graph.get(root, ())))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, pending = work[-1]
            if pending:
                nxt = pending.pop(0)
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(graph.get(nxt, ()))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: set[str] = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph.get(node, ()):
                    components.append(component)

    cycles: list[list[str]] = []
    for component in sorted(components, key=min):
        start = min(component)
        came_from: dict[str, str] = {}
        frontier = [start]
        found: str | None = None
        while frontier and found is None:
            nxt_frontier: list[str] = []
            for node in frontier:
                for nxt in sorted(graph.get(node, ())):
                    if nxt not in component:
                        continue
                    if nxt == start:
                        found = node
                        break
                    if nxt not in came_from:
                        came_from[nxt] = node
                        nxt_frontier.append(nxt)
                if found is not None:
                    break
            frontier = nxt_frontier
        assert found is not None
        path = [found]
        while path[-1] != start:
            path.append(came_from[path[-1]])
        cycles.append([*reversed(path), start])
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


# --- Layers (DESIGN.md section 2) ---------------------------------------------------------------

TYPES = "tinkex_actors.types"
SERVER = "tinkex_actors.local"
CLI = "tinkex_actors.cli"
SERVER_FACTORY = "tinkex_actors.service.service_client"
"""The one late-bound factory (``ServiceClient(embedded=True)``) by which the client starts it."""
APPLICATIONS = ("tinkex_actors.cli", "tinkex_actors.demo")
"""Prefixes of the programs (command line, demo) that start the embedded server on purpose."""

ALLOWED: dict[str, str] = {
    # Each line: a violation found today, and why it stays until its module is reworked.
    # Empty: every rule holds. A new line needs a reason a reviewer accepts.
}


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _private_owner(module: str) -> str | None:
    """The package a private module belongs to (``a.b`` for ``a.b._c.d``), None when public."""
    parts = module.split(".")
    for index, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:index])
    return None


def package_graph(
    root: Path = ROOT,
) -> tuple[dict[str, set[str]], set[tuple[str, str, str]]]:
    """Module -> imported modules of ours, and every ``(importer, module, _name)`` taken."""
    modules = {**_modules("supervisors", root), **_modules("tinkex_actors", root)}
    known = set(modules)
    graph = {name: _imported_modules(path, name, known) for name, path in modules.items()}
    private_names = {
        (name, source, imported)
        for name, path in modules.items()
        for source, imported in _from_imports(path, name)
        if source in known
        and source != name
        and f"{source}.{imported}" not in known
        and imported.startswith("_")
        and not imported.startswith("__")
    }
    return graph, private_names


def layer_violations(
    graph: dict[str, set[str]], private_names: set[tuple[str, str, str]] = frozenset()
) -> list[str]:
    """Every import that breaks a layer rule, as ``"rule: importer -> imported"``."""
    found: list[str] = []
    for importer in sorted(graph):
        for imported in sorted(graph[importer]):
            edge = f"{importer} -> {imported}"
            if _within(importer, "supervisors") and _within(imported, "tinkex_actors"):
                found.append(f"supervisors imports tinkex_actors: {edge}")
            if _within(importer, TYPES) and not _within(imported, TYPES):
                found.append(f"types imports outside types: {edge}")
            if (
                _within(importer, SERVER)
                and _within(imported, "tinkex_actors")
                and not (_within(imported, SERVER) or _within(imported, TYPES))
            ):
                found.append(f"server imports the client: {edge}")
            if (
                _within(imported, SERVER)
                and _within(importer, "tinkex_actors")
                and not _within(importer, SERVER)
                and importer != SERVER_FACTORY
                and not importer.startswith(APPLICATIONS)
            ):
                found.append(f"client imports the server: {edge}")
            owner = _private_owner(imported)
            if owner is not None and not _within(importer, owner):
                found.append(f"private module of another package: {edge}")
            if _within(imported, CLI) and not _within(importer, CLI):
                found.append(f"imports the command line: {edge}")
    for importer, source, name in sorted(private_names):
        # A private module is its package's shared internals; a public module's _name is its own.
        owner = _private_owner(source)
        if owner is None or not _within(importer, owner):
            found.append(f"private name of another module: {importer} imports {source}.{name}")
    actors = {name: deps for name, deps in graph.items() if _within(name, "tinkex_actors")}
    for cycle in import_cycles(actors):
        loop = cycle[:-1]  # told from its smallest module, so the text does not depend on the walk
        first = loop.index(min(loop))
        found.append("import cycle: " + " -> ".join([*loop[first:], *loop[:first], loop[first]]))
    return found


def _names_present(violation: str, graph: dict[str, set[str]]) -> bool:
    """Whether every module a violation names is in ``graph`` (False for one of another branch)."""
    names = [w for w in violation.split() if w.startswith(("tinkex_actors", "supervisors"))]
    def present(name: str) -> bool:
        parent, _, last = name.rpartition(".")
        return name in graph or (last.startswith("_") and parent in graph)  # a private name

    return all(present(name) for name in names)


@pytest.fixture(scope="module")
def real_graph() -> tuple[dict[str, set[str]], set[tuple[str, str, str]]]:
    """The package's import graph, read once for the module (each test plants into a copy)."""
    return package_graph()


def _copy(
    real: tuple[dict[str, set[str]], set[tuple[str, str, str]]],
) -> tuple[dict[str, set[str]], set[tuple[str, str, str]]]:
    graph, private_names = real
    return {name: set(deps) for name, deps in graph.items()}, set(private_names)


class TestLayers:
    """Imports run one way, as DESIGN.md section 2 promises."""

    def test_no_layer_violation_beyond_the_allow_list(self, real_graph):
        """Every rule holds for the package, except the violations listed in ALLOWED."""
        found = layer_violations(*_copy(real_graph))
        assert [v for v in found if v not in ALLOWED] == []

    def test_the_allow_list_holds_only_live_violations(self, real_graph):
        """A fixed violation must leave ALLOWED, so the list only shrinks."""
        graph, private_names = _copy(real_graph)
        found = set(layer_violations(graph, private_names))
        stale = [v for v in ALLOWED if v not in found and _names_present(v, graph)]
        assert stale == []

    @pytest.mark.parametrize(
        ("importer", "imported", "rule"),
        [
            ("supervisors.timers", "tinkex_actors.errors", "supervisors imports tinkex_actors"),
            ("tinkex_actors.types._base", "tinkex_actors.errors", "types imports outside types"),
            ("tinkex_actors.types.proto", "supervisors", "types imports outside types"),
            (
                "tinkex_actors.local.engine",
                "tinkex_actors.futures.future",
                "server imports the client",
            ),
            ("tinkex_actors.local.server", "tinkex_actors", "server imports the client"),
            (
                "tinkex_actors.futures.poller_actor",
                "tinkex_actors.local.server",
                "client imports the server",
            ),
            ("tinkex_actors.local.engine", "supervisors._base", "private module of another"),
            (
                "tinkex_actors.clients.training",
                "tinkex_actors.types._base",
                "private module of another",
            ),
            ("tinkex_actors.rest.rest_client", "tinkex_actors.cli.app", "imports the command line"),
            ("tinkex_actors.errors", "tinkex_actors.futures.poller_actor", "import cycle"),
        ],
    )
    def test_each_planted_violation_is_found(self, real_graph, importer, imported, rule):
        """One import planted into the real graph breaks the rule it should."""
        graph, private_names = _copy(real_graph)
        before = set(layer_violations(graph, private_names))
        graph[importer].add(imported)
        new = [v for v in layer_violations(graph, private_names) if v not in before]
        assert any(v.startswith(rule) for v in new), new

    def test_a_planted_private_name_is_found(self, real_graph):
        """Taking a _name from a public module, even of the same package, is reported."""
        graph, private_names = _copy(real_graph)
        planted = {
            *private_names,
            ("tinkex_actors.futures.poller_actor", "tinkex_actors.transport.retry", "_jitter"),
        }
        new = set(layer_violations(graph, planted)) - set(layer_violations(graph, private_names))
        assert new == {
            "private name of another module: "
            "tinkex_actors.futures.poller_actor imports tinkex_actors.transport.retry._jitter"
        }

    def test_planted_sources_are_read(self, tmp_path):
        """Violations written in source (relative, lazy and private-name imports) are found."""
        files = {
            "supervisors/__init__.py": "",
            "supervisors/_log.py": "",
            "supervisors/spec.py": "def f():\n    from tinkex_actors import errors\n",
            "tinkex_actors/__init__.py": "",
            "tinkex_actors/errors.py": "from supervisors._log import x\n",
            "tinkex_actors/clients/sampling.py": "def _parse(): ...\n",
            "tinkex_actors/worker.py": "from tinkex_actors.clients.sampling import _parse\n",
            "tinkex_actors/types/__init__.py": "from .. import errors\n",
            "tinkex_actors/local/__init__.py": "from ..worker import y\n",
        }
        for name, text in files.items():
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_text(text)
        assert layer_violations(*package_graph(tmp_path)) == [
            "supervisors imports tinkex_actors: supervisors.spec -> tinkex_actors.errors",
            "private module of another package: tinkex_actors.errors -> supervisors._log",
            "server imports the client: tinkex_actors.local -> tinkex_actors.worker",
            "types imports outside types: tinkex_actors.types -> tinkex_actors.errors",
            "private name of another module: tinkex_actors.worker imports "
            "tinkex_actors.clients.sampling._parse",
        ]

    def test_the_sanctioned_routes_pass(self):
        """The server factory, the applications and a package's own private modules are fine."""
        graph = {
            "tinkex_actors.service.service_client": {"tinkex_actors.local"},
            "tinkex_actors.cli.app": {"tinkex_actors.local.server"},
            "tinkex_actors.demo.rl": {"tinkex_actors.local"},
            "tinkex_actors.local.engine": {"supervisors", "tinkex_actors.types"},
            "tinkex_actors.types.proto": {"tinkex_actors.types._base"},
            "supervisors.dynamic": {"supervisors._base"},
        }
        private = {("supervisors.dynamic", "supervisors._base", "_Child")}
        assert layer_violations(graph, private) == []


# --- The folders, bottom-up (docs/architecture.md) ----------------------------------------------

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("wire types", ("tinkex_actors.types",)),
    ("foundation", (
        "tinkex_actors._version", "tinkex_actors.config", "tinkex_actors.errors",
        "tinkex_actors.logs", "tinkex_actors.telemetry", "tinkex_actors.tokenizer",
        "tinkex_actors.request_options", "tinkex_actors.restart_intensity",
        "tinkex_actors.lib.experimental",
    )),
    ("transport", ("tinkex_actors.transport",)),
    ("futures and polling", ("tinkex_actors.futures",)),
    ("clients", ("tinkex_actors.clients", "tinkex_actors.rest")),
    ("recovery", ("tinkex_actors.recovery",)),
    ("service", ("tinkex_actors.service",)),
    ("public API", ("tinkex_actors.auth", "tinkex_actors.lib")),
    ("applications", (
        "tinkex_actors.reporting", "tinkex_actors.demo", "tinkex_actors.fleet",
        "tinkex_actors.compat", "tinkex_actors.cli",
    )),
)
"""The client's folders from the bottom up: a module imports only its own layer and those below.

The package itself (``tinkex_actors/__init__.py``) only re-exports: it is the public API, which
the applications use as a user would. The embedded server (``local``) stands beside the layers
and shares only the wire types."""


def layer_of(module: str) -> int | None:
    """The index in LAYERS of the layer ``module`` belongs to (longest prefix wins), or None."""
    best: tuple[int, int] | None = None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if _within(module, prefix) and (best is None or len(prefix) > best[1]):
                best = (index, len(prefix))
    if module == "tinkex_actors":  # the package's __init__: the public names, re-exported
        return next(i for i, (name, _) in enumerate(LAYERS) if name == "public API")
    return None if best is None else best[0]


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every import of a module from a higher layer, as ``"layer: importer -> imported"``."""
    found: list[str] = []
    for importer in sorted(graph):
        low = layer_of(importer)
        if low is None:
            continue
        for imported in sorted(graph[importer]):
            high = layer_of(imported)
            if high is not None and high > low:
                found.append(
                    f"{LAYERS[low][0]} imports {LAYERS[high][0]}:"
                    f" {importer} -> {imported}"
                )
    return found


class TestFolders:
    """The folders stack one way: wire types, transport, futures, clients, recovery, service."""

    def test_every_client_module_has_a_layer(self, real_graph):
        """A new module or folder is placed in LAYERS (or is the embedded server)."""
        graph, _ = real_graph
        homeless = [
            m for m in graph
            if _within(m, "tinkex_actors") and not _within(m, SERVER) and layer_of(m) is None
        ]
        assert homeless == []

    def test_no_module_imports_a_higher_layer(self, real_graph):
        """Every import runs down the stack (or within a layer)."""
        graph, _ = real_graph
        assert upward_imports(graph) == []

    @pytest.mark.parametrize(
        ("importer", "imported"),
        [
            ("tinkex_actors.types._base", "tinkex_actors.config"),
            ("tinkex_actors.transport.transport", "tinkex_actors.futures.poller"),
            ("tinkex_actors.futures.poller_actor", "tinkex_actors.clients.session"),
            ("tinkex_actors.clients.training", "tinkex_actors.service.service_client"),
            ("tinkex_actors.recovery.orphans", "tinkex_actors.service"),
            ("tinkex_actors.service.service_client", "tinkex_actors.cli.main"),
            ("tinkex_actors.config", "tinkex_actors"),
        ],
    )
    def test_a_planted_upward_import_is_found(self, real_graph, importer, imported):
        """One upward import planted into the real graph is reported, naming both layers."""
        graph, _ = _copy(real_graph)
        graph.setdefault(importer, set()).add(imported)
        assert any(v.endswith(f": {importer} -> {imported}") for v in upward_imports(graph))
