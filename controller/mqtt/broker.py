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
import warnings
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from amqtt.plugins.base import BaseAuthPlugin
from amqtt.plugins.topic_checking import TopicAccessControlListPlugin
from amqtt.session import Session

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


class _SnapshotDict(dict):
    """A dict whose iteration walks a copy of its keys or items."""

    def __iter__(self):
        return iter(list(dict.keys(self)))

    def items(self):
        return list(dict.items(self))


def _guard_subscriptions(broker) -> None:
    """amqtt 0.12 walks its subscription table with awaits inside the loop (a new session
    replaying retained messages, a session ending); a client subscribing meanwhile ends the
    walk with "dictionary changed size during iteration" and leaves that client connected
    but deaf. After a controller restart, with every device of a hall reconnecting at once,
    the crash test saw a window display miss the hall for seconds. Iterating a snapshot is
    what the walk means anyway."""
    broker._subscriptions = _SnapshotDict(broker._subscriptions)


async def start_embedded_broker(listen: str, password_file: str | None = None,
                                acl: dict[str, dict[str, list[str]]] | None = None,
                                ) -> Callable[[], Awaitable[None]]:
    """Start an amqtt broker on `listen` ("host:port"); returns the coroutine function that stops it.

    With `password_file`, only its accounts may connect, each within `acl`
    (`controller.mqtt.accounts.amqtt_acl`)."""
    from amqtt.broker import Broker  # imported here: only halls without Mosquitto need it

    with warnings.catch_warnings():
        # amqtt 0.12 warns that `acl` is deprecated for `subscribe-acl`, but its typed config
        # (which strictly refuses unknown keys) has no field by that name yet
        warnings.filterwarnings("ignore", "The 'acl' option is deprecated", DeprecationWarning)
        broker = Broker(broker_config(listen, password_file, acl))
    _guard_subscriptions(broker)
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
