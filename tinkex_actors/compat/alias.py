"""The import hook that serves `tinker` and `tinker.*` from `tinkex_actors`."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import threading
from collections.abc import Sequence
from types import ModuleType

__all__ = ["ALIAS", "TARGET", "install", "installed", "uninstall"]

ALIAS = "tinker"
TARGET = "tinkex_actors"

_lock = threading.Lock()


def _target_name(fullname: str) -> str | None:
    if fullname == ALIAS:
        return TARGET
    if fullname.startswith(ALIAS + "."):
        return TARGET + fullname[len(ALIAS) :]
    return None


class _AliasLoader(importlib.abc.Loader):
    """Hands the already-imported target module to the import system, unchanged."""

    def __init__(self, module: ModuleType) -> None:
        self._module = module
        self._spec = module.__spec__

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return self._module

    def exec_module(self, module: ModuleType) -> None:
        # The import system stamps the alias spec on the module; the module keeps its own,
        # so that it still reports (and reloads as) its real name.
        module.__spec__ = self._spec


class AliasFinder(importlib.abc.MetaPathFinder):
    """Finds `tinker[.X.Y]` as `tinkex_actors[.X.Y]`; first on `sys.meta_path` while installed."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        """The spec of the aliased module, or None for any name outside `tinker`."""
        target_name = _target_name(fullname)
        if target_name is None:
            return None
        try:
            module = importlib.import_module(target_name)
        except ModuleNotFoundError as exc:
            if exc.name != target_name:
                raise
            raise ModuleNotFoundError(
                f"No module named {fullname!r}: `tinker` is served by tinkex-actors here, "
                f"which has no {target_name!r} (tinkex_actors.compat is installed)",
                name=fullname,
            ) from None
        return importlib.machinery.ModuleSpec(
            fullname, _AliasLoader(module), is_package=hasattr(module, "__path__")
        )


def installed() -> bool:
    """True while `import tinker` is served by this package."""
    return any(isinstance(f, AliasFinder) for f in sys.meta_path)


def install() -> None:
    """Serve `import tinker` (and `tinker.*`) from this package in this process.

    Call it before the first `import tinker`: if the official SDK is already imported,
    a RuntimeError says so rather than mixing the two. Calling it twice is harmless.
    """
    with _lock:
        if installed():
            return
        loaded = sys.modules.get(ALIAS)
        if loaded is not None and getattr(loaded, "__name__", None) != TARGET:
            raise RuntimeError(
                "the official `tinker` is already imported in this process; call "
                "tinkex_actors.compat.install() before the first `import tinker`, or run "
                "the program with `tinkex-actors exec -- ...`"
            )
        sys.meta_path.insert(0, AliasFinder())


def uninstall() -> None:
    """Stop serving `tinker` from this package and forget the aliased module names."""
    with _lock:
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, AliasFinder)]
        for name in [n for n in sys.modules if _target_name(n) is not None]:
            module = sys.modules[name]
            if getattr(module, "__name__", "").startswith(TARGET):
                del sys.modules[name]
