"""The hall's event log as a hash chain (防篡改记录): each event's hash is SHA-256 over the
hash of the event before it in the log and the event itself, so an event changed, removed or
moved afterwards no longer joins the chain the district centre holds.

The event is hashed as the hall's readers return it and as it travels to the centre
({"id", "kind", "at", "window", "ticket", "data"}: controller.core.events.to_json's shape with
its id, `data` without the sealed fields that never leave the hall), written as canonical JSON
(keys sorted, no spaces, UTF-8): how the hall's store lays out its columns, or the centre its
rows, does not enter into it. The hall, the shipper, `hallctl verify-log` and the centre all
hash with `link` here; nothing else computes a hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from typing import Any

from vocabulary.district import shippable

# the hash "before" the first event of a log
GENESIS = "0" * 64
FIELDS = ("id", "kind", "at", "window", "ticket", "data")


def canonical(event: dict[str, Any]) -> bytes:
    """The bytes an event is hashed as: its six fields, canonical JSON."""
    e = shippable(event)
    return json.dumps({f: e.get(f) for f in FIELDS}, ensure_ascii=False, sort_keys=True,
                      separators=(",", ":"), allow_nan=False).encode("utf-8")


def link(previous: str, event: dict[str, Any]) -> str:
    """The hash of `event` following the event whose hash is `previous` (GENESIS for the first)."""
    return hashlib.sha256(previous.encode("ascii") + canonical(event)).hexdigest()


def recompute(events: Iterable[dict[str, Any]], previous: str = GENESIS) -> Iterator[tuple[int, str]]:
    """(id, hash) of each event of a log in its order, computed from the events alone."""
    for e in events:
        previous = link(previous, e)
        yield e["id"], previous
