"""Short programs written for the official `tinker` SDK (run unchanged by test_scripts.py)."""
