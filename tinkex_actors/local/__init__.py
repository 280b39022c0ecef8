"""The embedded, loopback-only Tinker-compatible server and its tiny numpy model."""
