"""What a hall and its district centre (区县政务服务管理办公室) say to each other over MQTT.

The hall's shipper (controller.federation) and the centre (center/) both speak these shapes
and import nothing of each other: this module is their whole contract.

    district/<hall>/events   hall -> centre  a batch of the hall's event log, QoS 1
    district/<hall>/ack      centre -> hall  the centre's acknowledged mark, retained, QoS 1
    district/<hall>/link     hall -> centre  the shipper's heartbeat, retained; its will says offline

A batch covers the hall's log from just after `after` up to `last`: every event of the hall
with an id in (after, last] is in it (the ids of a hall's log only grow, and may skip). The
centre acknowledges the highest mark up to which it holds every event, after its commit; the
hall resumes from that mark and from nothing the broker may have kept.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

PREFIX = "district"
# the centre's consumers share one subscription, so more of them split the halls' batches
SHARE_GROUP = "centre"

ONLINE = "online"
OFFLINE = "offline"

_HALL_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
HALL_ID_EXPECTED = "a hall id of 1-32 letters, digits, '_' or '-' (e.g. \"500101-main\")"

# Fields an event must never carry out of the hall: sealed personal data and its lookup keys
# (the log holds none; a field an older version wrote is dropped before shipping all the same).
SEALED_FIELDS = frozenset({"identity_sealed", "phone_sealed", "citizen_key", "id_number",
                           "identity", "phone", "name"})


def is_hall_id(value: object) -> bool:
    return isinstance(value, str) and _HALL_ID.fullmatch(value) is not None


def events_topic(hall: str) -> str:
    return f"{PREFIX}/{hall}/events"


def ack_topic(hall: str) -> str:
    return f"{PREFIX}/{hall}/ack"


def link_topic(hall: str) -> str:
    return f"{PREFIX}/{hall}/link"


def shared(topic_filter: str) -> str:
    """The centre's shared subscription to `topic_filter`."""
    return f"$share/{SHARE_GROUP}/{topic_filter}"


EVENTS_FILTER = f"{PREFIX}/+/events"
LINK_FILTER = f"{PREFIX}/+/link"


def hall_of(topic: str) -> str | None:
    """The hall a district topic is about, None for anything else."""
    parts = topic.split("/")
    if len(parts) == 3 and parts[0] == PREFIX and is_hall_id(parts[1]):
        return parts[1]
    return None


class BadMessage(ValueError):
    """A message that is not what this contract says: dropped with this reason."""


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _loads(payload: bytes | bytearray) -> dict[str, Any]:
    try:
        value = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadMessage(f"not JSON: {e}") from None
    if not isinstance(value, dict):
        raise BadMessage("not a JSON object")
    return value


def _count(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadMessage(f"{what}: expected a count, found {value!r}")
    return value


def shippable(event: dict[str, Any]) -> dict[str, Any]:
    """The event as it leaves the hall: its `data` without any sealed field."""
    data = event.get("data")
    if isinstance(data, dict) and SEALED_FIELDS & data.keys():
        event = {**event, "data": {k: v for k, v in data.items() if k not in SEALED_FIELDS}}
    return event


@dataclass(frozen=True)
class Batch:
    """Events (after, last] of one hall's log: each {"id", "kind", "at", "window", "ticket",
    "data"} as the hall's store reads it (controller.core.events.to_json's shape, with its id)."""

    hall: str
    after: int
    last: int
    events: tuple[dict[str, Any], ...]

    def encode(self) -> bytes:
        return _dumps({"hall": self.hall, "after": self.after, "last": self.last,
                       "events": [shippable(e) for e in self.events]})

    @staticmethod
    def decode(topic: str, payload: bytes | bytearray) -> Batch:
        obj = _loads(payload)
        hall = obj.get("hall")
        if not is_hall_id(hall) or hall_of(topic) != hall:
            raise BadMessage(f"hall {hall!r} does not match the topic {topic!r}")
        after, last = _count(obj.get("after"), "after"), _count(obj.get("last"), "last")
        events = obj.get("events")
        if not isinstance(events, list) or last < after:
            raise BadMessage("expected events and after <= last")
        previous = after
        for e in events:
            if not isinstance(e, dict) or not isinstance(e.get("kind"), str) or not isinstance(e.get("at"), str):
                raise BadMessage("an event without kind or at")
            event_id = _count(e.get("id"), "id")
            if not previous < event_id <= last:
                raise BadMessage(f"event {event_id} out of order or outside ({after}, {last}]")
            previous = event_id
        return Batch(str(hall), after, last, tuple(events))


@dataclass(frozen=True)
class Ack:
    """The centre holds every event of the hall up to `acked`."""

    acked: int

    def encode(self) -> bytes:
        return _dumps({"acked": self.acked})

    @staticmethod
    def decode(payload: bytes | bytearray) -> Ack:
        return Ack(_count(_loads(payload).get("acked"), "acked"))


@dataclass(frozen=True)
class Link:
    """The shipper's heartbeat: online with the hall's last event id and the time it was sent
    (the hall's clock), or offline (its will, or a clean stop); `bundle`: the version of the
    centre's configuration bundle the hall uses (None: none yet)."""

    state: str
    at: str | None = None
    last_event: int | None = None
    bundle: int | None = None

    def encode(self) -> bytes:
        return _dumps({"state": self.state, "at": self.at, "last_event": self.last_event,
                       "bundle": self.bundle})

    @staticmethod
    def decode(payload: bytes | bytearray) -> Link:
        obj = _loads(payload)
        state = obj.get("state")
        if state not in (ONLINE, OFFLINE):
            raise BadMessage(f"link state {state!r}")
        last = obj.get("last_event")
        at = obj.get("at")
        bundle = obj.get("bundle")
        return Link(str(state), at if isinstance(at, str) else None,
                    None if last is None else _count(last, "last_event"),
                    None if bundle is None else _count(bundle, "bundle"))


# -- configuration flowing down (配置下发): the centre's bundles, the hall's reports ------------
#
#     district/<hall>/config         centre -> hall  the hall's latest bundle, retained, QoS 1
#     district/<hall>/config-report  hall -> centre  what the hall did with a version, retained, QoS 1
#
# A bundle is the hall's configuration as the centre keeps it: the hall file's sections
# `services`, `windows`, `staff`, `calendar`, `open_days`, `closed_days` (each in the file's
# shape; a section left out stays the hall's own), and `disabled_staff`, the staff ids the
# centre has disabled (停用). Versions of a hall only grow: a hall ignores one at or below the
# version it uses (a retained message met again after a reconnect).

BUNDLE_SECTIONS = ("services", "windows", "staff", "calendar", "open_days", "closed_days")
DISABLED_STAFF = "disabled_staff"
CONFIG_REPORT_FILTER = f"{PREFIX}/+/config-report"

APPLIED = "applied"  # in use: staff disables at once, the sections from the hall's next start
REFUSED = "refused"  # failed the hall's checks: nothing changed, the last good one stays


def config_topic(hall: str) -> str:
    return f"{PREFIX}/{hall}/config"


def config_report_topic(hall: str) -> str:
    return f"{PREFIX}/{hall}/config-report"


@dataclass(frozen=True)
class Bundle:
    """Version `version` of the hall's configuration, as the centre published it."""

    hall: str
    version: int
    created_at: str
    created_by: str
    content: dict[str, Any]

    def encode(self) -> bytes:
        return _dumps(self.json())

    def json(self) -> dict[str, Any]:
        return {"hall": self.hall, "version": self.version, "created_at": self.created_at,
                "created_by": self.created_by, "content": self.content}

    @staticmethod
    def decode(topic: str | None, payload: bytes | bytearray) -> Bundle:
        """`topic` None: a bundle kept by the hall, not off the wire."""
        obj = _loads(payload)
        hall = obj.get("hall")
        if not is_hall_id(hall) or (topic is not None and topic != config_topic(str(hall))):
            raise BadMessage(f"hall {hall!r} does not match the topic {topic!r}")
        version = _count(obj.get("version"), "version")
        content = obj.get("content")
        if not isinstance(content, dict):
            raise BadMessage("content: expected a JSON object of the hall's sections")
        created_at, created_by = obj.get("created_at"), obj.get("created_by")
        if not isinstance(created_at, str) or not isinstance(created_by, str):
            raise BadMessage("expected created_at and created_by")
        return Bundle(str(hall), version, created_at, created_by, content)


@dataclass(frozen=True)
class ConfigReport:
    """What the hall did with bundle `version`: applied, or refused at `key` for `reason`;
    `in_use` the version it uses now (0: none from the centre yet)."""

    version: int
    state: str
    in_use: int
    at: str
    key: str | None = None
    reason: str | None = None

    def encode(self) -> bytes:
        return _dumps({"version": self.version, "state": self.state, "in_use": self.in_use,
                       "at": self.at, "key": self.key, "reason": self.reason})

    @staticmethod
    def decode(payload: bytes | bytearray) -> ConfigReport:
        obj = _loads(payload)
        state = obj.get("state")
        if state not in (APPLIED, REFUSED) or not isinstance(obj.get("at"), str):
            raise BadMessage(f"config report state {state!r}")
        key, reason = obj.get("key"), obj.get("reason")
        return ConfigReport(_count(obj.get("version"), "version"), str(state),
                            _count(obj.get("in_use"), "in_use"), str(obj["at"]),
                            key if isinstance(key, str) else None, reason if isinstance(reason, str) else None)


# -- the hash chain (vocabulary.chain): each shipped event carries its link as "hash"; now and
# then, and after every reconnect, the shipper checks the whole log against its chain and
# sends the outcome on the hall's chain topic.

CHAIN_FILTER = f"{PREFIX}/+/chain"
CHECKPOINT_EVERY = 1000  # an audit's checkpoints: the computed hash at every 1000th event id


def chain_topic(hall: str) -> str:
    return f"{PREFIX}/{hall}/chain"


def _hash_or_none(value: object, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-f]{64}", value):
        raise BadMessage(f"{what}: expected a SHA-256 in hex, found {value!r}")
    return value


@dataclass(frozen=True)
class Audit:
    """The hall's log checked against its chain at `at` (the hall's clock): `checked` events up
    to `through`; `checkpoints` the hash the events themselves give at every CHECKPOINT_EVERY-th
    id and at `through`, which the centre compares with the chain it verified as it ingested;
    `first_break` the first event whose stored link the events no longer give (`problem`:
    altered, gap, unlinked), None when the hall's log agrees with its chain."""

    hall: str
    at: str
    checked: int
    through: int
    checkpoints: dict[int, str]
    first_break: int | None = None
    problem: str | None = None

    def encode(self) -> bytes:
        return _dumps({"hall": self.hall, "at": self.at, "checked": self.checked, "through": self.through,
                       "checkpoints": {str(k): v for k, v in sorted(self.checkpoints.items())},
                       "first_break": self.first_break, "problem": self.problem})

    @staticmethod
    def decode(topic: str, payload: bytes | bytearray) -> Audit:
        obj = _loads(payload)
        hall = obj.get("hall")
        if not is_hall_id(hall) or hall_of(topic) != hall:
            raise BadMessage(f"hall {hall!r} does not match the topic {topic!r}")
        points = obj.get("checkpoints")
        if not isinstance(points, dict):
            raise BadMessage("expected checkpoints")
        try:
            checkpoints = {int(k): _hash_or_none(v, "checkpoint") or "" for k, v in points.items()}
        except ValueError:
            raise BadMessage("a checkpoint's id is not a number") from None
        first = obj.get("first_break")
        problem = obj.get("problem")
        return Audit(str(hall), str(obj.get("at")), _count(obj.get("checked"), "checked"),
                     _count(obj.get("through"), "through"), checkpoints,
                     None if first is None else _count(first, "first_break"),
                     problem if isinstance(problem, str) else None)


def event_hash(event: dict[str, Any]) -> str | None:
    """The link a shipped event carries (None for none, or for anything not a SHA-256)."""
    value = event.get("hash")
    return value if isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value) else None
