"""Found first by `import tinker` under `tinkex-actors exec`: hands over tinkex_actors."""

from __future__ import annotations

import sys

import tinkex_actors
from tinkex_actors.compat.alias import install

# The import system returns whatever sys.modules holds under the name once this file ran.
sys.modules[__name__] = tinkex_actors
install()
