"""Client tests run under the leak check: every actor stopped, no thread of theirs left.

The embedded server is shared by a module and grows its own worker threads on demand
(`tinkex-local...`); those belong to the server's lifetime, not to a test's.
"""

from __future__ import annotations

from tests._leaks import leak_check as leak_check  # the shared autouse fixture


