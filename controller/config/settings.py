"""The hall's infrastructure settings: where its MQTT broker is and how the controller logs in,
which sound device speaks the calls, what the hall display's foot scrolls, and how the
supervisor's floor view lays the windows out.

They are how this controller is installed, not the hall's rules, so they live beside the
core's `Hall` rather than in it: the config reads both from one file (`HallConfig`), the
assembly and the MQTT security tools use the settings, and the core never sees a password.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from controller.core.hall import Hall


@dataclass(frozen=True)
class MqttSettings:
    """[mqtt]: the hall's broker (`host`), or the embedded one listening on `embedded_listen`."""

    host: str | None = None
    port: int = 1883
    embedded_listen: str = "127.0.0.1:1883"
    # the controller's broker account; the password is given in the file or, better, named
    # by an environment variable (controller.mqtt.accounts.controller_credentials)
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in a log line
    password_env: str | None = None
    # the embedded broker's password file (amqtt format, `hallctl mqtt-passwd`)
    password_file: str | None = None

    @property
    def embedded(self) -> bool:
        """The controller runs the broker itself (no [mqtt] host)."""
        return self.host is None

    def address(self) -> tuple[str, int]:
        """(host, port) where the hall's MQTT clients connect."""
        if self.host is not None:
            return self.host, self.port
        host, _, port = self.embedded_listen.rpartition(":")
        return host, int(port)


@dataclass(frozen=True)
class VoiceSettings:
    """[voice] 语音播报: on or off, the ALSA device (none: the WAV files are only written), and
    how often each call is said."""

    enabled: bool = True
    device: str | None = None
    repeats: int = 1


@dataclass(frozen=True)
class DisplaySettings:
    """[display] the hall display page: 滚动通知, the lines that scroll along its foot."""

    notices: tuple[str, ...] = (
        "请留意叫号，过号可重新取号排队一次",
        "老、弱、病、残、孕请到绿色通道窗口优先办理",
        "办事遇到困难，请到“办不成事”窗口反映",
        "请对我们的服务作出评价，您的意见是我们改进的动力")


@dataclass(frozen=True)
class FloorZone:
    """区: one area of the hall floor, with its windows in rows as they stand; 0 is a place
    with no window (a pillar, a gap between counters)."""

    name: str
    rows: tuple[tuple[int, ...], ...]

    def json(self) -> dict[str, Any]:
        return {"name": self.name, "rows": [list(row) for row in self.rows]}


# windows in a row of the default layout (a hall file without [layout])
DEFAULT_ROW = 8


@dataclass(frozen=True)
class FloorLayout:
    """[layout] 现场布局: the windows as the hall lays them out, zone by zone, for the
    supervisor's floor view. Every window has exactly one place."""

    zones: tuple[FloorZone, ...]

    def json(self) -> dict[str, Any]:
        return {"zones": [z.json() for z in self.zones]}

    @classmethod
    def default(cls, windows: Iterable[int]) -> FloorLayout:
        """Without [layout]: one zone, the windows in number order, DEFAULT_ROW to a row."""
        numbers = sorted(windows)
        rows = tuple(tuple(numbers[i:i + DEFAULT_ROW]) for i in range(0, len(numbers), DEFAULT_ROW))
        return cls((FloorZone("服务大厅", rows),))


@dataclass(frozen=True)
class FederationSettings:
    """[federation] the district centre's link: this hall's id there, the district broker, the
    shipper's account (the password named by an environment variable, or given here) and TLS."""

    hall_id: str
    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in a log line
    password_env: str | None = None
    tls: bool = False
    ca_file: str | None = None  # TLS: the district's CA (none: the system's)
    batch_events: int = 500  # events per MQTT message
    window_events: int = 5000  # events sent and not yet acknowledged, at most
    heartbeat_seconds: float = 5.0
    resend_seconds: float = 20.0  # no acknowledgement for this long: send again from the mark
    audit_seconds: float = 3600.0  # the log checked against its hash chain, result to the centre

    def credentials(self) -> tuple[str | None, str | None]:
        """(username, password) for the district broker; the password read from its
        environment variable at start (`hallctl run` refuses to start when it is unset)."""
        if self.password_env:
            return self.username, os.environ.get(self.password_env)
        return self.username, self.password


@dataclass(frozen=True)
class ReminderSettings:
    """[reminders] 到号提醒: a text message when `ahead` people are left before a citizen who
    opted in at the kiosk, and one when called; sent through the SMS gateway `gateway` (a
    registered kind, drivers.sms) at `url`, each try within `timeout_seconds`, at most
    `attempts` tries. Off unless the hall names a gateway URL."""

    enabled: bool = False
    ahead: int = 3
    gateway: str = "http"
    url: str | None = None
    token_env: str | None = None  # the environment variable holding the gateway's token
    timeout_seconds: float = 5.0
    attempts: int = 3


@dataclass(frozen=True)
class HallConfig:
    """What a hall config file describes: the hall (the core's rules and floor) and how this
    controller is installed for it."""

    hall: Hall
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    voice: VoiceSettings = field(default_factory=VoiceSettings)
    display: DisplaySettings = field(default_factory=DisplaySettings)
    # None: the default layout of the hall's windows (FloorLayout.default)
    layout: FloorLayout | None = None
    federation: FederationSettings | None = None  # no [federation]: the hall stands alone
    reminders: ReminderSettings = field(default_factory=ReminderSettings)
