"""Who may write and read which MQTT topics: one account per device, derived from the hall config.

The controller subscribes to each device's own topics (`<topic>/press`, `<topic>/grade`,
`<topic>/status`) and acts for the window the config gives that device, so a press on window
6's topic only ever moves window 6. What stops window 5's tablet from writing on window 6's
topic is the broker: each device logs in with its own account (`options.username`) and the
ACL made here lets it write only its own topics.

The same rules serve both brokers: `mosquitto_acl` writes Mosquitto's `acl_file` (`hallctl
mqtt-acl`), `amqtt_acl` gives the embedded broker's topic plugin its tables.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from controller.core.hall import Device, Hall
from controller.config.settings import MqttSettings
from controller.config.tomlkeys import ConfigError


@dataclass(frozen=True)
class Account:
    """A broker account and the exact topics it may write (publish) and read (subscribe)."""

    username: str
    what: str  # a line for the person reading the ACL file
    write: tuple[str, ...]
    read: tuple[str, ...]


def controller_status_topic(hall: Hall) -> str:
    return f"hall/{hall.region_code}/controller/status"


def device_account(hall: Hall, d: Device) -> Account | None:
    """The topics one MQTT device needs; None for a device that is not on MQTT or has no account.

    - a tablet keypad writes `<topic>/press`; it may read its window's display topic, to show
      the number being served;
    - an evaluation pad writes `<topic>/grade` and reads `<topic>/state` (what to ask);
    - a window or hall display reads its topic;
    - each writes its own `<topic>/status` (its will says `offline`).
    """
    user = dict(d.options).get("username")
    if d.transport != "mqtt" or not d.topic or user is None:
        return None
    status = f"{d.topic}/status"
    where = f"window {d.window}" if d.window is not None else "the hall"
    if d.kind == "counter_keypad":
        displays = tuple(x.topic for x in hall.devices if x.transport == "mqtt" and x.topic
                         and x.kind == "caller_display" and x.window == d.window)
        return Account(user, f"{d.id}: keypad of {where}", (f"{d.topic}/press", status), displays)
    if d.kind == "evaluator_pad":
        return Account(user, f"{d.id}: evaluation pad of {where}", (f"{d.topic}/grade", status),
                       (f"{d.topic}/state",))
    return Account(user, f"{d.id}: {d.kind} of {where}", (status,), (d.topic,))


def controller_account(hall: Hall, mqtt: MqttSettings) -> Account:
    """What the controller writes (displays, pads' states, its status) and reads (presses,
    grades, every device's status)."""
    if mqtt.username is None:
        raise ConfigError("mqtt.username", "missing; the ACL gives the controller an account of "
                                           "its own: set username and password_env")
    write, read = [controller_status_topic(hall)], []
    for d in hall.devices:
        if d.transport != "mqtt" or not d.topic:
            continue
        if d.kind in ("caller_display", "hall_display"):
            write.append(d.topic)
        elif d.kind == "evaluator_pad":
            write.append(f"{d.topic}/state")
            read.append(f"{d.topic}/grade")
        elif d.kind == "counter_keypad":
            read.append(f"{d.topic}/press")
        read.append(f"{d.topic}/status")
    return Account(mqtt.username, "the hall controller", tuple(write), tuple(read))


def accounts(hall: Hall, mqtt: MqttSettings) -> list[Account]:
    """The controller's account, then one per MQTT device, in config order."""
    found = [controller_account(hall, mqtt)]
    found += [a for d in hall.devices if (a := device_account(hall, d)) is not None]
    return found


def without_account(hall: Hall) -> list[str]:
    return [d.id for d in hall.devices if d.transport == "mqtt" and device_account(hall, d) is None]


def mosquitto_acl(hall: Hall, mqtt: MqttSettings, config_path: str = "hall.toml") -> str:
    """Mosquitto's `acl_file` for the hall, with the recipe for the password file and
    mosquitto.conf as comments at its head."""
    users = accounts(hall, mqtt)
    lines = [
        f"# Mosquitto acl_file for {hall.name}, made by `hallctl mqtt-acl --config {config_path}`.",
        "# Remake it whenever a device is added or moved, then reload Mosquitto (SIGHUP).",
        "#",
        "# mosquitto.conf:",
        "#   listener 1883",
        "#   allow_anonymous false",
        "#   password_file /etc/mosquitto/hall.passwd",
        "#   acl_file /etc/mosquitto/hall.acl",
        "#   # a client id is its user name: no device can take over another's session",
        "#   use_username_as_clientid true",
        "#",
        "# The password file: one account per line below, a password each (-c only for the first):",
    ]
    for i, a in enumerate(users):
        lines.append(f"#   mosquitto_passwd {'-c ' if i == 0 else ''}/etc/mosquitto/hall.passwd {a.username}")
    lines += ["#", "# The controller's password goes in the environment variable named by",
              f"# [mqtt] password_env ({mqtt.password_env or 'not set'}); each device's into the device."]
    missing = without_account(hall)
    if missing:
        lines += ["#", "# NOT ALLOWED ANYTHING (no options.username): " + ", ".join(missing)]
    for a in users:
        lines += ["", f"# {a.what}", f"user {a.username}"]
        lines += [f"topic write {t}" for t in a.write]
        lines += [f"topic read {t}" for t in a.read]
    return "\n".join(lines) + "\n"


def amqtt_acl(hall: Hall, mqtt: MqttSettings) -> dict[str, dict[str, list[str]]]:
    """The embedded broker's TopicAccessControlListPlugin settings: publish and subscribe
    tables per user name."""
    users = accounts(hall, mqtt)
    return {"publish_acl": {a.username: list(a.write) for a in users},
            "acl": {a.username: list(a.read) for a in users}}


def controller_credentials(mqtt: MqttSettings) -> tuple[str | None, str | None]:
    """The controller's (username, password); (None, None) for a broker without accounts.

    A `password_env` that is not set is a ConfigError naming the key, raised at start."""
    if mqtt.username is None:
        return None, None
    if mqtt.password_env is not None:
        password = os.environ.get(mqtt.password_env)
        if not password:
            raise ConfigError("mqtt.password_env", f"the environment variable "
                              f"{mqtt.password_env} is not set; set it to the controller's "
                              "broker password where the controller runs")
        return mqtt.username, password
    return mqtt.username, mqtt.password


def check_at_start(mqtt: MqttSettings) -> None:
    """Fail before anything starts when the broker login cannot work: the password's variable is
    unset, or the embedded broker's password file is missing or lacks the controller."""
    user, _ = controller_credentials(mqtt)
    if mqtt.password_file is None or mqtt.host is not None:
        return
    path = Path(mqtt.password_file)
    try:
        names = {line.split(":", 1)[0] for line in path.read_text(encoding="utf-8").splitlines()
                 if line.strip() and not line.startswith("#")}
    except OSError as e:
        raise ConfigError("mqtt.password_file", f"cannot read {path}: {e.strerror}; make it with "
                          "`hallctl mqtt-passwd`") from None
    if user not in names:
        raise ConfigError("mqtt.password_file", f"{path} has no line for the controller's account "
                          f"{user!r}; add it with `hallctl mqtt-passwd {path} {user}`")


def password_line(username: str, password: str) -> str:
    """A line of the embedded broker's password file: `username:<argon2 hash>` (amqtt's
    FileAuthPlugin reads Argon2 or bcrypt hashes, not Mosquitto's)."""
    from pwdlib import PasswordHash
    from pwdlib.hashers.argon2 import Argon2Hasher

    return f"{username}:{PasswordHash((Argon2Hasher(),)).hash(password)}"


def set_password(path: Path, username: str, password: str) -> None:
    """Add or replace `username`'s line in the embedded broker's password file (mode 600)."""
    lines = []
    if path.exists():
        lines = [line for line in path.read_text(encoding="utf-8").splitlines()
                 if line.split(":", 1)[0] != username]
    lines.append(password_line(username, password))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
