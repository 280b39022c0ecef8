"""Tests of the embedded server and its tiny model."""
