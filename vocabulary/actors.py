"""Who acted, when nobody did: the hall itself."""

from __future__ import annotations

# the actor of what the hall does on its own (the day's start, the tick, default grades, cases
# opened from a bad review): in the command log and the audit rows
SYSTEM = "system"
