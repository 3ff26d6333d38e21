"""Configuration flowing down (配置下发): each hall's versioned bundle, published to the hall.

    hall_bundles          (hall_id, version): the content, when and by whom; versions of a
                          hall only grow (1, 2, ...), taken under a per-hall lock
    hall_bundle_reports   what the hall said of a version: applied, or refused with the key
                          and the reason; `in_use` the version it went on with

A new version is committed first, then published on the hall's config topic, retained with
QoS 1 (vocabulary.district): a hall offline gets the latest when it connects, and the desk
publishes every hall's latest again whenever it (re)connects to the broker, so a publish lost
with the broker costs nothing. Disabling a staff account (停用) is a new version: the content
of the last version the hall has not refused, with the account added to `disabled_staff`; one
mechanism, one order, nothing the hall could apply out of turn.

The centre checks a bundle's shape (an object of the sections a hall takes); the hall checks
the content with its own file's checks, which only it can (its devices, its file), and says
so on its config-report topic.

    POST /api/v1/halls/{hall_id}/bundles                      {"content": {...}, "created_by": "..."}
    GET  /api/v1/halls/{hall_id}/bundles                      every version, what the hall said
    POST /api/v1/halls/{hall_id}/staff/{staff_id}/disable     {"created_by": "..."}
    POST /api/v1/halls/{hall_id}/staff/{staff_id}/enable      {"created_by": "..."}
"""

from __future__ import annotations

import logging
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from fastapi import Body, FastAPI
from paho.mqtt.enums import CallbackAPIVersion
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from center import store
from vocabulary import district

log = logging.getLogger(__name__)


class BadBundle(ValueError):
    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key, self.reason = key, reason


def check_shape(content: Any) -> dict[str, Any]:
    """What the centre can check of a bundle: an object of the sections a hall takes."""
    if not isinstance(content, dict):
        raise BadBundle("content", "expected an object of the hall file's sections")
    known = (*district.BUNDLE_SECTIONS, district.DISABLED_STAFF)
    for key in content:
        if key not in known:
            raise BadBundle(f"content.{key}", f"not a section a bundle carries; expected {', '.join(known)}")
    disabled = content.get(district.DISABLED_STAFF, [])
    if not isinstance(disabled, list) or not all(isinstance(s, str) for s in disabled):
        raise BadBundle(f"content.{district.DISABLED_STAFF}", "expected a list of staff ids")
    return content


# -- the store -------------------------------------------------------------------------------

def _bundle(row: dict[str, Any]) -> district.Bundle:
    return district.Bundle(row["hall_id"], row["version"], row["created_at"].isoformat(), row["created_by"],
                           row["content"])


def post(conn: psycopg.Connection, hall: str, content: dict[str, Any], by: str) -> district.Bundle:
    """A new version of the hall's bundle, committed; the next number of the hall's."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"bundle:{hall}",))
        row = cur.execute("SELECT COALESCE(max(version), 0) + 1 AS v FROM hall_bundles WHERE hall_id = %s",
                          (hall,)).fetchone()
        assert row is not None
        created = cur.execute(
            "INSERT INTO hall_bundles (hall_id, version, content, created_by) VALUES (%s, %s, %s, %s) "
            "RETURNING *", (hall, row["v"], Jsonb(content), by)).fetchone()
        assert created is not None
        return _bundle(created)


def latest(conn: psycopg.Connection, hall: str | None = None) -> list[district.Bundle]:
    """The latest bundle of `hall`, or of every hall."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT DISTINCT ON (hall_id) * FROM hall_bundles WHERE %s::text IS NULL OR hall_id = %s "
            "ORDER BY hall_id, version DESC", (hall, hall)).fetchall()
    return [_bundle(r) for r in rows]


def last_good(conn: psycopg.Connection, hall: str) -> district.Bundle | None:
    """The hall's latest bundle it has not refused (the one a new version builds on)."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT * FROM hall_bundles b WHERE hall_id = %s AND NOT EXISTS (SELECT 1 FROM hall_bundle_reports r "
            "WHERE r.hall_id = b.hall_id AND r.version = b.version AND r.state = %s) "
            "ORDER BY version DESC LIMIT 1", (hall, district.REFUSED)).fetchone()
    return None if row is None else _bundle(row)


def with_staff(conn: psycopg.Connection, hall: str, staff_id: str, disabled: bool, by: str) -> district.Bundle:
    """A new version with `staff_id` in (or out of) `disabled_staff`, the rest as the last good
    one (a version the hall refused is not built on: the disable must take)."""
    with conn.transaction():  # one transaction: two disables at once both end up in the bundle
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"bundle:{hall}",))
        last = last_good(conn, hall)
        content = dict(last.content) if last else {}
        names = [s for s in content.get(district.DISABLED_STAFF, []) if s != staff_id]
        content[district.DISABLED_STAFF] = sorted([*names, staff_id]) if disabled else names
        return post(conn, hall, content, by)


def record(conn: psycopg.Connection, hall: str, report: district.ConfigReport) -> None:
    conn.execute(
        "INSERT INTO hall_bundle_reports (hall_id, version, state, in_use, hall_time, key, reason) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (hall, report.version, report.state, report.in_use, report.at, report.key, report.reason))


def history(conn: psycopg.Connection, hall: str) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        versions = cur.execute(
            "SELECT version, content, created_at, created_by FROM hall_bundles WHERE hall_id = %s "
            "ORDER BY version DESC", (hall,)).fetchall()
        reports = cur.execute(
            "SELECT version, state, in_use, hall_time, key, reason FROM hall_bundle_reports "
            "WHERE hall_id = %s ORDER BY received_at, version", (hall,)).fetchall()
    said = {r["version"]: r for r in reports}
    return {"hall_id": hall,
            # by the hall's last report (its heartbeat says the same to the shipper's link)
            "in_use": reports[-1]["in_use"] if reports else None,
            "versions": [{**v, "created_at": v["created_at"].isoformat(), "hall": said.get(v["version"])}
                         for v in versions]}


# -- the desk: publishing and hearing back ----------------------------------------------------

class BundleDesk:
    """Publishes bundles to the halls and stores what they report; `start()`, `stop()`."""

    def __init__(self, dsn: str, host: str, port: int, name: str = "1",
                 username: str | None = None, password: str | None = None) -> None:
        self.dsn = dsn
        self.host, self.port = host, port
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"centre-config-{name}", protocol=mqtt.MQTTv5)
        if username:
            c.username_pw_set(username, password)
        c.reconnect_delay_set(1, 10)
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        self.client = c

    def start(self) -> BundleDesk:
        with store.connect(self.dsn) as conn:
            store.migrate(conn)
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, bundle: district.Bundle) -> None:
        self.client.publish(district.config_topic(bundle.hall), bundle.encode(), qos=1, retain=True)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("district broker refused the bundle desk: %s", reason_code)
            return
        client.subscribe(district.shared(district.CONFIG_REPORT_FILTER), qos=1)
        try:  # a broker that lost its retained messages gets every hall's latest again
            with store.connect(self.dsn) as conn:
                for bundle in latest(conn):
                    self.publish(bundle)
        except psycopg.Error as e:
            log.warning("bundle desk: cannot read the latest bundles: %s", e)

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        hall = district.hall_of(message.topic)
        try:
            if hall is None or message.topic != district.config_report_topic(hall):
                raise district.BadMessage("not a hall's config report")
            report = district.ConfigReport.decode(message.payload)
        except district.BadMessage as e:
            log.warning("dropped a message on %s: %s", message.topic, e)
            return
        if report.state == district.REFUSED:
            log.warning("hall %s refused bundle v%d: %s: %s", hall, report.version, report.key, report.reason)
        try:
            with store.connect(self.dsn) as conn:
                record(conn, hall, report)
        except psycopg.Error as e:  # retained: the desk's next connect hears it again
            log.warning("bundle desk: report of %s not stored: %s", hall, e)


# -- the API -----------------------------------------------------------------------------------

def add_routes(app: FastAPI, dsn: str, desk: BundleDesk, error: type[Exception]) -> None:
    """The bundle routes on the centre's app; `error(status, code, message)` is its ApiError."""

    def hall_id(value: str) -> str:
        if not district.is_hall_id(value):
            raise error(400, "bad_hall_id", f"大厅编号不正确：{district.HALL_ID_EXPECTED}")
        return value

    def text(body: dict[str, Any], key: str) -> str:
        value = body.get(key)
        if not isinstance(value, str) or not 0 < len(value.strip()) <= 64:
            raise error(400, "bad_request", f"{key}: 请填写操作人（1-64 个字符）")
        return value.strip()

    @app.post("/api/v1/halls/{hall}/bundles", status_code=201)
    def post_bundle(hall: str, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
        try:
            content = check_shape(body.get("content"))
        except BadBundle as e:
            raise error(400, "bad_bundle", f"配置不正确：{e.key}: {e.reason}") from None
        with store.connect(dsn) as conn:
            bundle = post(conn, hall_id(hall), content, text(body, "created_by"))
        desk.publish(bundle)
        return bundle.json()

    @app.get("/api/v1/halls/{hall}/bundles")
    def bundles(hall: str) -> dict[str, Any]:
        with store.connect(dsn) as conn:
            return history(conn, hall_id(hall))

    def staff(hall: str, staff_id: str, body: dict[str, Any], disabled: bool) -> dict[str, Any]:
        if not district.is_hall_id(staff_id):  # the hall's staff ids have the same form
            raise error(400, "bad_staff_id", "工号不正确")
        with store.connect(dsn) as conn:
            bundle = with_staff(conn, hall_id(hall), staff_id, disabled, text(body, "created_by"))
        desk.publish(bundle)
        return bundle.json()

    @app.post("/api/v1/halls/{hall}/staff/{staff_id}/disable", status_code=201)
    def disable(hall: str, staff_id: str, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
        return staff(hall, staff_id, body, True)

    @app.post("/api/v1/halls/{hall}/staff/{staff_id}/enable", status_code=201)
    def enable(hall: str, staff_id: str, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
        return staff(hall, staff_id, body, False)
