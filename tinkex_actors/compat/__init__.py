"""Run code written for the official `tinker` SDK on tinkex-actors, unchanged.

Two ways, both opt-in (nothing here runs unless asked, so an installed official
`tinker` is never shadowed by accident):

- the launcher: `tinkex-actors exec -- python -m some.recipe ...` (or
  `python -m tinkex_actors.compat python -m some.recipe ...`) runs the command with
  `import tinker` served by this package, in that process and every Python process it
  starts;
- in-process: `tinkex_actors.compat.install()` before the first `import tinker`.

`tinker` then names the `tinkex_actors` module itself, and `tinker.X.Y` names
`tinkex_actors.X.Y`: the same module objects under two names, so a class imported
either way is one class.
"""

from __future__ import annotations

from tinkex_actors.compat.alias import ALIAS, TARGET, install, installed, uninstall

__all__ = ["ALIAS", "TARGET", "install", "installed", "uninstall"]
