"""`python -m tinkex_actors.cli ...`: the `tinkex-actors` command line."""

import sys

from tinkex_actors.cli.app import main

if __name__ == "__main__":
    sys.exit(main())
