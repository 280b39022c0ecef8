"""Opt-in session recovery (rebuild what a lost session held, replay what it lost); no orphans.

- `log`: `RecoveryPolicy`, and the bounded log of one model's operations since its checkpoint.
- `training`, `sampling`: the clients a ServiceClient with a recovery policy hands out.
- `session_recovery`: the coordinator that rebuilds a lost session and replays, in order.
- `orphans`: after a creating call whose answer may have been lost, no model left behind.
"""
