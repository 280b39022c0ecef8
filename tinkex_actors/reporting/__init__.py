"""What a run shows a person: progress bars, metrics.jsonl, loss charts."""
