"""`python -m tinkex_actors.compat CMD ...`: CMD runs with `import tinker` served by us."""

from __future__ import annotations

import sys

from tinkex_actors.compat.launcher import main

sys.exit(main())
