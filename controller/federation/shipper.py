"""The shipper: the hall's event log, in order, to its district centre (区县政务服务管理办公室).

The log is the outbox. The shipper reads it on a read-only connection of its own
(`controller.store.outbox`), in a thread of its own, and publishes batches of it with QoS 1
on a persistent MQTT session to the district broker (vocabulary.district). It never touches
the hall's lock, its thread or the web's event loop: with no link at all the hall serves
exactly as it does without a district.

What counts as shipped is what the centre acknowledges, on the hall's ack topic (retained),
after its commit; the shipper keeps that mark in `federation-acked.json` beside the hall's
database. After every (re)connect, and whenever the centre has acknowledged nothing for
`resend_seconds` while events are out, it sends again from the mark, whatever the broker
may still hold: a duplicate costs the centre nothing (unique on hall and event id), a gap
would be a lost evaluation.

The events leave as the log holds them: masked forms, grades, lookup-free (the log stores
no name, ID number or phone); any sealed field an older log may carry is dropped
(`vocabulary.district.shippable`). Contact details for the district's callback officers do
not travel yet (docs/center.md).

Each event travels with its link in the log's hash chain (vocabulary.chain). At start, after
every reconnect and every `audit_seconds`, the shipper checks the whole log against its chain
and sends the outcome with checkpoints (vocabulary.district.Audit), so the centre sees an event
rewritten in the hall's database after it was shipped (docs/center.md).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import ssl
import threading
import time
from pathlib import Path
from typing import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

from controller.config.settings import FederationSettings
from controller.store.outbox import Outbox
from vocabulary import district

log = logging.getLogger(__name__)

MARK_FILE = "federation-acked.json"
SESSION_EXPIRY_SECONDS = 7 * 24 * 3600  # the broker keeps the session (and the ack) a week
POLL_SECONDS = 0.2  # how often an idle shipper looks for new events in the log
FAULT_SECONDS = 5.0


class Shipper:
    """Ships the log of the hall database `db_path` as `settings` say; `start()`, `stop()`."""

    def __init__(self, settings: FederationSettings, db_path: Path, data_dir: Path,
                 clock: Callable[[], dt.datetime] | None = None,
                 bundle_version: Callable[[], int | None] | None = None) -> None:
        """`bundle_version`: the centre's configuration bundle in use, for the heartbeat."""
        self.settings = settings
        self.bundle_version = bundle_version or (lambda: None)
        self.hall = settings.hall_id
        self.outbox = Outbox(db_path)
        self.mark_path = data_dir / MARK_FILE
        self.clock = clock or (lambda: dt.datetime.now().astimezone())
        self.acked = self._stored_mark()
        self.sent = self.acked  # the last event handed to the broker on this connection
        self.connected = False
        self._rewind = True
        self._last_progress = time.monotonic()
        self._last_heartbeat = 0.0
        # the audit runs in a thread of its own, on a connection of its own: a long log's check
        # never holds up shipping; woken at start, after every reconnect and every audit_seconds
        self._audit_due = threading.Event()
        self._audit_thread: threading.Thread | None = None
        self.audits = 0  # audits sent, for a test to wait on
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.client = self._client()

    # -- the mark -----------------------------------------------------------------------

    def _stored_mark(self) -> int:
        try:
            value = json.loads(self.mark_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as e:
            log.warning("district: %s unreadable (%s); sending again from the start", self.mark_path, e)
            return 0
        if value.get("hall") != self.hall:  # another hall id: the centre knows nothing of this one
            return 0
        acked = value.get("acked")
        return acked if isinstance(acked, int) and acked >= 0 else 0

    def _store_mark(self, acked: int) -> None:
        # no fsync: a mark lost in a power cut only sends some events twice
        tmp = self.mark_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"hall": self.hall, "acked": acked}), encoding="utf-8")
        os.replace(tmp, self.mark_path)

    # -- MQTT -------------------------------------------------------------------------

    def _client(self) -> mqtt.Client:
        s = self.settings
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"hall-{self.hall}-shipper",
                        protocol=mqtt.MQTTv5)
        user, password = s.credentials()
        if user:
            c.username_pw_set(user, password)
        if s.tls:
            c.tls_set(ca_certs=s.ca_file, cert_reqs=ssl.CERT_REQUIRED)
        c.will_set(district.link_topic(self.hall), district.Link(district.OFFLINE).encode(), qos=1, retain=True)
        c.max_inflight_messages_set(20)
        c.max_queued_messages_set(0)
        c.reconnect_delay_set(1, 10)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.message_callback_add(district.ack_topic(self.hall), self._on_ack)
        return c

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("district broker refused the shipper: %s", reason_code)
            return
        client.subscribe(district.ack_topic(self.hall), qos=1)
        with self._lock:
            self.connected = True
            self._rewind = True
        self._last_heartbeat = 0.0
        self._audit_due.set()
        log.info("district link up (%s:%s); the centre holds up to event %d",
                 self.settings.host, self.settings.port, self.acked)
        self._wake.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        with self._lock:
            if self.connected and not self._stopping.is_set():
                log.warning("district link down: %s", reason_code)
            self.connected = False

    def _on_ack(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        try:
            acked = district.Ack.decode(message.payload).acked
        except district.BadMessage as e:
            log.warning("district ack dropped: %s", e)
            return
        with self._lock:
            # an ack lower than ours is an older one (a retained message, a slower consumer)
            if acked <= self.acked:
                return
            self.acked = acked
            self.sent = max(self.sent, acked)
        self._last_progress = time.monotonic()
        try:
            self._store_mark(acked)
        except OSError as e:
            log.warning("district: cannot keep the mark in %s: %s", self.mark_path, e)
        self._wake.set()

    # -- the loop ---------------------------------------------------------------------

    def start(self) -> Shipper:
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = SESSION_EXPIRY_SECONDS
        # connect_async: the first connection is tried by the loop, so start never waits
        self.client.connect_async(self.settings.host, self.settings.port, keepalive=30,
                                  clean_start=False, properties=properties)
        self.client.loop_start()
        self._thread = threading.Thread(target=self._run, name=f"district-shipper-{self.hall}", daemon=True)
        self._thread.start()
        self._audit_thread = threading.Thread(target=self._audits, name=f"district-audit-{self.hall}", daemon=True)
        self._audit_thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Say offline, disconnect and stop (a clean disconnect sends no will)."""
        self._stopping.set()
        self._wake.set()
        self._audit_due.set()
        for thread in (self._thread, self._audit_thread):
            if thread is not None:
                thread.join(timeout + 5)
        if self.connected:
            info = self.client.publish(district.link_topic(self.hall),
                                       district.Link(district.OFFLINE, self._now()).encode(), qos=1, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()
        self.outbox.close()

    def _now(self) -> str:
        return self.clock().isoformat()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                busy = self._step()
            except Exception:  # a locked or missing database: the hall's problem, not ours to end on
                log.exception("district shipper; trying again in %.0f s", FAULT_SECONDS)
                self._stopping.wait(FAULT_SECONDS)
                continue
            if not busy:
                self._wake.wait(POLL_SECONDS)
                self._wake.clear()

    def _step(self) -> bool:
        """Send what the window allows; True when there may be more to send at once."""
        if not self.connected:
            return False
        now = time.monotonic()
        with self._lock:
            if self.sent > self.acked and now - self._last_progress > self.settings.resend_seconds:
                log.warning("district: no acknowledgement for %.0f s; sending again from event %d",
                            now - self._last_progress, self.acked)
                self._rewind = True
            if self._rewind:
                self._rewind = False
                self.sent = self.acked
                self._last_progress = now
            after, room = self.sent, self.acked + self.settings.window_events - self.sent
        if now - self._last_heartbeat >= self.settings.heartbeat_seconds:
            self._heartbeat()
        if room <= 0:
            return False
        events = self.outbox.after(after, min(room, self.settings.batch_events))
        if not events:
            return False
        batch = district.Batch(self.hall, after, events[-1]["id"], tuple(events))
        self.client.publish(district.events_topic(self.hall), batch.encode(), qos=1)
        with self._lock:
            if self.sent == after:  # not rewound meanwhile
                self.sent = batch.last
        return True

    def _heartbeat(self) -> None:
        self._last_heartbeat = time.monotonic()
        link = district.Link(district.ONLINE, self._now(), self.outbox.last_id(), self.bundle_version())
        self.client.publish(district.link_topic(self.hall), link.encode(), qos=1, retain=True)

    def audit_now(self) -> None:
        """Check the log against its chain and tell the centre, now (when the link is up)."""
        self._audit_due.set()

    def _audits(self) -> None:
        outbox = Outbox(self.outbox.path)
        try:
            while not self._stopping.is_set():
                self._audit_due.wait(self.settings.audit_seconds)
                if self._stopping.is_set():
                    break
                if not self.connected:  # the next connect wakes it again
                    self._audit_due.clear()
                    continue
                self._audit_due.clear()
                try:
                    self._audit(outbox)
                except Exception:  # a locked or missing database: the next audit tries again
                    log.exception("district: the chain audit failed")
        finally:
            outbox.close()

    def _audit(self, outbox: Outbox) -> None:
        """The whole log checked against its hash chain (controller.store.chainlog.verify), the
        outcome and checkpoints to the centre, which compares them with the chain it holds: an
        event rewritten in the hall's database after it was shipped no longer gives the hashes
        the centre verified, whether or not the stored links were rewritten with it."""
        verdict, checkpoints = outbox.verify(district.CHECKPOINT_EVERY)
        if verdict.first_break is not None:
            log.error("the event log no longer agrees with its hash chain at event %d (%s); "
                      "telling the district centre", verdict.first_break, verdict.problem)
        audit = district.Audit(self.hall, self._now(), verdict.checked, verdict.through, checkpoints,
                               verdict.first_break, verdict.problem)
        self.client.publish(district.chain_topic(self.hall), audit.encode(), qos=1)
        self.audits += 1


def start_shipper(settings: FederationSettings, db_path: Path, data_dir: Path,
                  clock: Callable[[], dt.datetime] | None = None,
                  bundle_version: Callable[[], int | None] | None = None) -> Shipper:
    """A shipper for the hall database at `db_path`, started."""
    return Shipper(settings, db_path, data_dir, clock, bundle_version).start()
