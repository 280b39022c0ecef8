"""Drivers for tinker-cookbook recipes (run by test_cookbook.py, `--run-slow` only)."""
