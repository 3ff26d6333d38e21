"""A consumer: the halls' batches from the district broker into PostgreSQL, then the acks.

It subscribes to every hall's events and heartbeats through the shared subscription
(vocabulary.district), so running more consumers splits the halls' batches between them. It
takes what arrived, up to `max_messages` at once, writes it in one transaction
(center.store.ingest), and only after the commit acknowledges the MQTT messages (manual
PUBACK: a consumer killed before its commit gets them again from the broker) and publishes
each touched hall's mark on its ack topic, retained. A message that breaks the contract is
logged and acknowledged, so it cannot stop the others; a database that fails is retried with
the same messages, which stay unacknowledged meanwhile.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from center import chain as chains
from center import store
from vocabulary import district

log = logging.getLogger(__name__)

SESSION_EXPIRY_SECONDS = 24 * 3600
RETRY_SECONDS = 1.0


class Consumer:
    """One consumer named `name` (its MQTT client id is `centre-<name>`)."""

    def __init__(self, dsn: str, host: str, port: int, name: str = "1",
                 username: str | None = None, password: str | None = None,
                 max_messages: int = 100) -> None:
        self.dsn = dsn
        self.host, self.port = host, port
        self.max_messages = max_messages
        self._inbox: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection | None = None
        self.committed = 0  # batches written, for a test to wait on
        self._audits: list[district.Audit] = []  # the hash-chain audits among the messages taken
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"centre-{name}", protocol=mqtt.MQTTv5,
                        manual_ack=True)
        if username:
            c.username_pw_set(username, password)
        c.max_inflight_messages_set(100)
        c.reconnect_delay_set(1, 10)
        c.on_connect = self._on_connect
        c.on_message = lambda client, userdata, message: self._inbox.put(message)
        self.client = c

    def start(self) -> Consumer:
        with store.connect(self.dsn) as conn:
            store.migrate(conn)
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = SESSION_EXPIRY_SECONDS
        self.client.connect_async(self.host, self.port, keepalive=30, clean_start=False, properties=properties)
        self.client.loop_start()
        self._thread = threading.Thread(target=self._run, name="centre-consumer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop taking messages; what is not yet committed stays unacknowledged at the broker."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(10)
        self.client.disconnect()
        self.client.loop_stop()
        if self._conn is not None:
            self._conn.close()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("district broker refused the consumer: %s", reason_code)
            return
        client.subscribe([(district.shared(district.EVENTS_FILTER), 1), (district.shared(district.LINK_FILTER), 1),
                          (district.shared(district.CHAIN_FILTER), 1)])

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                first = self._inbox.get(timeout=0.2)
            except queue.Empty:
                continue
            messages = [first]
            while len(messages) < self.max_messages:
                try:
                    messages.append(self._inbox.get_nowait())
                except queue.Empty:
                    break
            self._write(messages)

    def _parse(self, messages: list[mqtt.MQTTMessage]) -> tuple[list[district.Batch], dict[str, district.Link]]:
        batches: list[district.Batch] = []
        links: dict[str, district.Link] = {}
        self._audits = []
        for m in messages:
            hall = district.hall_of(m.topic)
            try:
                if hall is None:
                    raise district.BadMessage("not a hall's topic")
                if m.topic == district.link_topic(hall):
                    links[hall] = district.Link.decode(m.payload)  # the latest of each hall counts
                elif m.topic == district.chain_topic(hall):
                    self._audits.append(district.Audit.decode(m.topic, m.payload))
                else:
                    batches.append(district.Batch.decode(m.topic, m.payload))
            except district.BadMessage as e:
                log.warning("dropped a message on %s: %s", m.topic, e)
        return batches, links

    def _write(self, messages: list[mqtt.MQTTMessage]) -> None:
        batches, links = self._parse(messages)
        while not self._stopping.is_set():
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = store.connect(self.dsn)
                marks = store.ingest(self._conn, batches, links)
                for audit in self._audits:  # after the batches they may check (center.chain)
                    with self._conn.transaction():
                        chains.audit(self._conn, audit)
                break
            except (psycopg.DataError, psycopg.ProgrammingError) as e:
                # what the database refuses to store (a NUL in a text): the others go on
                if len(messages) > 1:
                    for m in messages:
                        self._write([m])
                    return
                log.error("centre database refused the message on %s (its hall stays at its mark): %s",
                          messages[0].topic, e)
                marks = {}
                break
            except psycopg.Error as e:  # the database away, a deadlock: the same again
                log.warning("centre database: %s; trying again in %.0f s", e, RETRY_SECONDS)
                if self._conn is not None and not self._conn.closed and self._conn.broken:
                    self._conn.close()
                time.sleep(RETRY_SECONDS)
        else:
            return  # stopping: nothing acknowledged, the broker delivers them again
        for m in messages:
            if m.qos > 0:
                self.client.ack(m.mid, m.qos)
        for hall, mark in marks.items():
            self.client.publish(district.ack_topic(hall), district.Ack(mark).encode(), qos=1, retain=True)
        self.committed += len(batches)
