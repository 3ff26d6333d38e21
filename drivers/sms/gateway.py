"""短信网关: how a text message leaves the hall, as a registry of gateway kinds.

A gateway takes one `TextMessage` and either hands it on or raises `GatewayError`; it
never retries and never waits longer than its timeout (the caller, a thread of its own,
retries). The kind a hall uses is named in its config (`[reminders] gateway = "http"`),
as device transports and bar codecs are (`register_gateway` beside the class).

`http`: a JSON POST `{"id", "to", "text"}` to the URL the hall gives, with the message's
id also as the `Idempotency-Key` header, so a gateway that has seen it (a resend after the
controller stopped between sending and recording) can drop the copy. Any 2xx is taken.

Every text passes `sms_text` (drivers.text.fit): no control characters, bounded length.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from drivers.text import fit

# 4 parts of a long message (67 characters each) at most: a reminder is one or two
MAX_CHARS = 268


def sms_text(text: str) -> str:
    """`text` as a message may carry it (drivers.text.fit: any Unicode, bounded)."""
    return fit(text, None, max_chars=MAX_CHARS)


@dataclass(frozen=True)
class TextMessage:
    """One message: `id` names it across resends, `to` is the phone, unmasked."""

    id: str
    to: str
    text: str

    def __repr__(self) -> str:  # never the number in a log line
        return f"TextMessage({self.id!r}, to={self.to[:3]}****{self.to[-4:]})"


class GatewayError(Exception):
    """The gateway did not take the message (refused, failed, unreachable, too slow)."""


class SmsGateway(Protocol):
    def send(self, message: TextMessage) -> None:
        """Hand `message` on, or raise GatewayError."""


class HttpGateway:
    """An SMS gateway reached by an HTTP POST of JSON."""

    def __init__(self, url: str, timeout: float = 5.0, token: str | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"an SMS gateway URL starts with http:// or https://, not {url!r}")
        self.url, self.timeout, self.token = url, timeout, token

    def send(self, message: TextMessage) -> None:
        body = json.dumps({"id": message.id, "to": message.to, "text": sms_text(message.text)},
                          ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json; charset=utf-8",
                   "Idempotency-Key": message.id}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url, body, headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:  # noqa: S310
                status = reply.status
        except urllib.error.HTTPError as e:
            raise GatewayError(f"HTTP {e.code}") from None
        except (OSError, ValueError) as e:  # refused, unreachable, timed out
            raise GatewayError(type(e).__name__ + (f": {e}" if str(e) else "")) from None
        if not 200 <= status < 300:
            raise GatewayError(f"HTTP {status}")


# kind -> how to make it from its options (url, timeout, token)
GATEWAYS: dict[str, Callable[..., SmsGateway]] = {}


def register_gateway(kind: str, factory: Callable[..., SmsGateway]) -> None:
    """A gateway kind a hall config may name; `factory(**options)` makes one."""
    GATEWAYS[kind] = factory


def gateway_from(kind: str, **options: Any) -> SmsGateway:
    """The gateway of `kind` with its options (KeyError: no such kind)."""
    return GATEWAYS[kind](**options)


register_gateway("http", HttpGateway)
