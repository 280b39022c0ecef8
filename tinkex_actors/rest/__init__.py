"""REST calls: training runs, checkpoints and their archives, sessions, samplers, admin reports."""
