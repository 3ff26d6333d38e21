"""The embedded MQTT broker (amqtt): runs in-process when the hall names no external broker.

A newcomer's hall works without installing Mosquitto; a production hall points
`[mqtt] host` at its Mosquitto and this broker does not start.

Without `[mqtt] password_file` it takes anyone who reaches its port: keep it on a closed
LAN (or loopback, as the demo does); a live hall listening beyond loopback without accounts
fails check-config unless `[mqtt] allow_anonymous = true` says so. With one, it runs amqtt's
own plugins: every client logs in from that file (Argon2 hashes, `hallctl mqtt-passwd`) and
the topic ACL of `controller.mqtt.accounts` keeps each device to its own window's topics, as
Mosquitto's acl_file does. amqtt 0.12 publishes a client's Will without asking its topic
plugins, so `WillTopicCheck` refuses at CONNECT a login whose Will names a topic its account
may not write (Mosquitto checks a Will against the ACL when it publishes it). What amqtt 0.12
cannot do: tie a client id to its account, so a logged-in device could still take over
another client's session by reusing its client id (Mosquitto's `use_username_as_clientid`
prevents that). A hall that needs that guarantee uses Mosquitto.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import warnings
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.mqtt.constants import QOS_1, QOS_2
from amqtt.plugins.base import BaseAuthPlugin
from amqtt.plugins.topic_checking import TopicAccessControlListPlugin
from amqtt.session import OutgoingApplicationMessage, Session

log = logging.getLogger(__name__)
SHUTDOWN_SECONDS = 3.0


def broker_config(listen: str, password_file: str | None = None,
                  acl: dict[str, dict[str, list[str]]] | None = None) -> dict:
    """amqtt's settings: anonymous clients, or (with `password_file`) accounts and the topic ACL."""
    if password_file is None:
        plugins: dict = {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}
    else:
        # FileAuthPlugin answers nothing for a client without a user name, and amqtt refuses a
        # client no plugin accepted: no anonymous clients
        acl = acl or {"publish_acl": {}, "acl": {}}
        plugins = {"amqtt.plugins.authentication.FileAuthPlugin": {"password_file": password_file},
                   f"{__name__}.WillTopicCheck": {"publish_acl": acl["publish_acl"]},
                   "amqtt.plugins.topic_checking.TopicAccessControlListPlugin": acl}
    return {"listeners": {"default": {"type": "tcp", "bind": listen}}, "plugins": plugins}


class WillTopicCheck(BaseAuthPlugin):
    """Refuses a login whose Will names a topic its account may not publish on.

    amqtt publishes a Will for a client that dropped its connection without asking the topic
    plugins: window 5's keypad account could otherwise leave a Will on window 6's press topic,
    pull its own cable, and make window 6 call (or grade window 6's visit 非常不满意). Checked at
    CONNECT, against the same publish table as the topic ACL, so the device sees the refusal
    (CONNACK "not authorised") instead of a Will that silently never arrives."""

    @dataclass
    class Config:
        publish_acl: dict[str, list[str]] = field(default_factory=dict)

    async def authenticate(self, *, session: Session) -> bool | None:
        if not session.will_flag:
            return None  # no opinion: the password plugin decides
        topic = session.will_topic or ""
        allowed = self.config.publish_acl.get(session.username or "", [])
        if any(TopicAccessControlListPlugin.topic_ac(topic, a) for a in allowed):
            return None
        log.warning("MQTT login refused: account %r (client %r) left a Will on %r, which it may "
                    "not write", session.username, session.client_id, topic)
        return False


class _Subscriptions(dict):
    """amqtt's subscription table (topic filter -> [(session, QoS)]), iterated over a copy,
    with its wildcard filters kept apart so that a message finds its subscribers without
    walking every filter (`matching`)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.wildcards: set[str] = {k for k in self if _is_wildcard(k)}

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        if _is_wildcard(key):
            self.wildcards.add(key)

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self.wildcards.discard(key)

    def pop(self, key: str, *default: Any) -> Any:
        self.wildcards.discard(key)
        return super().pop(key, *default)

    def clear(self) -> None:
        super().clear()
        self.wildcards.clear()

    def __iter__(self):
        return iter(list(dict.keys(self)))

    def items(self):
        return list(dict.items(self))

    def matching(self, topic: str, matches: Callable[[str, str], bool]) -> list[tuple[str, list]]:
        """The filters a message on `topic` goes to, with their subscribers: the filter that is
        the topic itself, and the wildcard filters `matches` accepts."""
        found = [(topic, dict.__getitem__(self, topic))] if dict.__contains__(self, topic) else []
        return found + [(f, dict.__getitem__(self, f)) for f in list(self.wildcards)
                        if matches(topic, f)]


def _is_wildcard(topic_filter: str) -> bool:
    return "+" in topic_filter or "#" in topic_filter


class HallBroker(Broker):
    """amqtt's broker, with two changes to its subscription table (`_Subscriptions`):

    - amqtt 0.12 walks the table with awaits inside the loop (a new session replaying
      retained messages, a session ending); a client subscribing meanwhile ended the walk
      with "dictionary changed size during iteration" and left that client connected but
      deaf. After a controller restart, with every device of a hall reconnecting at once,
      the crash test saw a window display miss the hall for seconds. The table is walked
      over a copy, which is what the walk means anyway.
    - amqtt 0.12 relays each message by testing every topic filter of every client against
      its topic (and formatting a debug line for each that does not match). A hall's
      controller alone subscribes two filters per device: at 300 windows each window bar's
      state walked some 900 filters, most of the broker's time. `_run_broadcast` below is
      amqtt 0.12.1's, taking only the matching filters from the table's index.
    """

    _subscriptions: _Subscriptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._subscriptions = _Subscriptions(self._subscriptions)

    async def _run_broadcast(self, running_tasks: deque[asyncio.Task[OutgoingApplicationMessage]]) -> None:
        broadcast = await self._broadcast_queue.get()
        topic = broadcast["topic"]
        for _filter, subscriptions in self._subscriptions.matching(topic, self._matches):
            for target_session, sub_qos in list(subscriptions):
                qos = broadcast.get("qos", sub_qos)
                if not await self._topic_filtering(target_session, topic=topic, action=Action.RECEIVE):
                    self.logger.info(f"{target_session.client_id} not allowed to receive messages "
                                     f"from TOPIC {topic}.")
                    continue
                connected = target_session.transitions.state == "connected"
                # [MQTT 3.1.2.4] kept for a session that is away and not clean, at QoS 1 or 2
                # (not for an anonymous one), as amqtt does
                if (not connected and not target_session.clean_session and qos in (QOS_1, QOS_2)
                        and not target_session.is_anonymous):
                    await self._retain_broadcast_message(broadcast, qos, target_session)
                    continue
                handler = self._get_handler(target_session) if connected else None
                if handler:
                    running_tasks.append(asyncio.ensure_future(
                        handler.mqtt_publish(topic, broadcast["data"], qos, retain=False)))


async def start_embedded_broker(listen: str, password_file: str | None = None,
                                acl: dict[str, dict[str, list[str]]] | None = None,
                                ) -> Callable[[], Awaitable[None]]:
    """Start an amqtt broker on `listen` ("host:port"); returns the coroutine function that stops it.

    With `password_file`, only its accounts may connect, each within `acl`
    (`controller.mqtt.accounts.amqtt_acl`)."""
    with warnings.catch_warnings():
        # amqtt 0.12 warns that `acl` is deprecated for `subscribe-acl`, but its typed config
        # (which strictly refuses unknown keys) has no field by that name yet
        warnings.filterwarnings("ignore", "The 'acl' option is deprecated", DeprecationWarning)
        broker = HallBroker(broker_config(listen, password_file, acl))
    try:
        await broker.start()
    except Exception as e:
        raise RuntimeError(f"the embedded MQTT broker cannot listen on {listen}: {e}. "
                           "Set [mqtt] embedded_listen to a free port, or [mqtt] host "
                           "to use an external broker.") from e
    log.info("embedded MQTT broker listening on %s", listen)

    async def stop() -> None:
        # amqtt's shutdown can wait on a client that is still connected; a hall that is
        # stopping does not wait for it
        try:
            await asyncio.wait_for(broker.shutdown(), SHUTDOWN_SECONDS)
        except (asyncio.TimeoutError, Exception) as e:
            log.warning("embedded MQTT broker did not stop cleanly: %r", e)

    return stop


async def start_broker_thread(listen: str, password_file: str | None = None,
                              acl: dict[str, dict[str, list[str]]] | None = None,
                              ) -> Callable[[], Awaitable[None]]:
    """`start_embedded_broker` on a thread and event loop of its own; returns the coroutine
    function that stops both.

    `hallctl run` serves the web API on one event loop: with the broker on it too, every
    window bar's state relayed to its display (two a call, and 300 bars) was work the web
    requests waited behind, a third of that loop's time at 100 calls a second. On a loop of
    its own the broker still shares the interpreter, but a request waits at most the
    interpreter's switch interval for it, not its whole turn of relaying."""
    loop = _new_loop()
    thread = threading.Thread(target=_run_loop, args=(loop,), name="mqtt-broker", daemon=True)
    thread.start()

    async def end_loop() -> None:
        loop.call_soon_threadsafe(loop.stop)
        await asyncio.to_thread(thread.join, SHUTDOWN_SECONDS)

    try:
        stop_broker = await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(
            start_embedded_broker(listen, password_file, acl), loop))
    except BaseException:
        await end_loop()
        raise

    async def stop_there() -> None:
        await stop_broker()

    async def stop() -> None:
        try:
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(stop_there(), loop))
        finally:
            await end_loop()

    return stop


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop where it is installed (uvicorn[standard] brings it), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        # what amqtt left running (a client's handler that never ended) ends with the loop
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()
