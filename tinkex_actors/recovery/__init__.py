"""Opt-in session recovery (rebuild what a lost session held, replay what it lost); no orphans."""
