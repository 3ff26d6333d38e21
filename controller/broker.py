"""The embedded MQTT broker (amqtt): runs in-process when the hall names no external broker.

A newcomer's hall works without installing Mosquitto; a production hall points
`[mqtt] host` at its Mosquitto and this broker does not start.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

log = logging.getLogger(__name__)
SHUTDOWN_SECONDS = 3.0


def broker_config(listen: str) -> dict:
    return {
        "listeners": {"default": {"type": "tcp", "bind": listen}},
        "plugins": {
            "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
        },
    }


async def start_embedded_broker(listen: str) -> Callable[[], Awaitable[None]]:
    """Start an amqtt broker on `listen` ("host:port"); returns the coroutine function that stops it."""
    from amqtt.broker import Broker  # imported here: only halls without Mosquitto need it

    broker = Broker(broker_config(listen))
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
