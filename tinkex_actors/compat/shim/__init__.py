"""A directory that `tinkex-actors exec` puts first on the child's PYTHONPATH (see `tinker/`)."""
