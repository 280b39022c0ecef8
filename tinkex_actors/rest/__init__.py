"""REST calls: training runs, checkpoints and their archives, sessions, samplers, admin reports.

`rest_client` (the `RestClient`) stands on `base` (transport, lifetime, worker threads) and
`paths` (the checks on what goes in a URL); `checkpoints`, `archive` (signed URL, download,
safe extraction) and `admin_calls` hold its groups of calls; `admin_client` is the official
`AdminClient`.
"""
