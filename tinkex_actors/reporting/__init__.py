"""What a run shows a person: progress bars, metrics.jsonl, loss charts.

`progress` (a live bar on a terminal, plain lines elsewhere), `metrics` (one JSON line per
step), `plot` (a PNG chart and a terminal curve) and `font` (its labels).
"""
