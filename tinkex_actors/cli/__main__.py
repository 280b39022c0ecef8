"""`python -m tinkex_actors.cli ...`: the `tinkex-actors` command line."""

from tinkex_actors.cli.app import main

if __name__ == "__main__":
    main()
