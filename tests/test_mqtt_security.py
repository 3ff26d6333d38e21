"""MQTT devices log in, each with its own account, and may write only their own window's topics.

The demo hall with a broker account per device (windows 5-20 are MQTT terminals), against a real
Mosquitto configured by `hallctl mqtt-acl` and the embedded broker with the same ACL.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import time
import uuid

import pytest

from controller.counters.calling_devices import attach_calling, controller_mqtt
from controller.cli import main, open_hall
from controller.runtime.clock import ManualClock
from controller.config.hall import load_config, parse_hall
from controller.core import commands as c
from controller.core.hall import Device
from controller.floor.devices import attach_devices
from controller.mqtt.accounts import (
    amqtt_acl, controller_account, controller_credentials, device_account, set_password,
)
from controller.config.tomlkeys import ConfigError, read_toml
from drivers.mqtt import MqttLink
from tests.halls import at, small_hall
from tests.server import DEMO_CONFIG, wait_for

PASSWORD_ENV = "HALL_MQTT_PASSWORD"
CONTROLLER_PASSWORD = "controller-secret-1"


def secured_demo_toml(path) -> str:
    """The demo hall with `[mqtt] username` for the controller and `options.username` on each
    MQTT device (named as the device), writing to `path`."""
    text = DEMO_CONFIG.read_text(encoding="utf-8")
    text, n = re.subn(r'(\nid = "([a-z0-9-]+)"\nkind = "[a-z_]+"\ntransport = "mqtt"\n'
                      r'topic = "[^"]+"\n(?:window = \d+\n)?)',
                      lambda m: f'{m[1]}options = {{ username = "{m[2]}" }}\n', text)
    assert n == 49, n  # the main display and three devices at each of windows 5-20
    text = re.sub(r'embedded_listen = "[^"]+"',
                  f'host = "127.0.0.1"\nusername = "hall-controller"\npassword_env = "{PASSWORD_ENV}"',
                  text)
    path.write_text(text, encoding="utf-8")
    return text


def password(account: str) -> str:
    return f"{account}-pw-123"


@pytest.fixture(params=["mosquitto", "amqtt"])
def secured(request, tmp_path, monkeypatch, capsys, make_mosquitto, make_embedded_amqtt):
    """(hall, its [mqtt] settings, broker): the secured demo hall, its MQTT devices only, on a broker that refuses
    anonymous clients and applies the hall's ACL; accounts for the controller and windows 5
    and 6's keypads."""
    toml = tmp_path / "hall.toml"
    secured_demo_toml(toml)
    config = load_config(toml)
    mqtt = config.mqtt
    hall = dataclasses.replace(config.hall,
                               devices=tuple(d for d in config.hall.devices if d.transport == "mqtt"))
    accounts = ["hall-controller", "keypad-05", "keypad-06"]
    monkeypatch.setenv(PASSWORD_ENV, CONTROLLER_PASSWORD)
    if request.param == "mosquitto":
        assert main(["mqtt-acl", "--config", str(toml)]) == 0
        acl = tmp_path / "hall.acl"
        acl.write_text(capsys.readouterr().out)
        passwd = tmp_path / "hall.passwd"
        for i, account in enumerate(accounts):
            subprocess.run(["mosquitto_passwd", "-b", *(["-c"] if i == 0 else []), str(passwd),
                            account, CONTROLLER_PASSWORD if i == 0 else password(account)],
                           check=True)
        broker = make_mosquitto(f"allow_anonymous false\npassword_file {passwd}\n"
                                f"acl_file {acl}\nuse_username_as_clientid true\n")
        mqtt = dataclasses.replace(mqtt, port=broker.port)
    else:
        passwd = tmp_path / "embedded.passwd"
        for i, account in enumerate(accounts):
            assert main(["mqtt-passwd", str(passwd), account, "--password",
                         CONTROLLER_PASSWORD if i == 0 else password(account)]) == 0
        broker = make_embedded_amqtt(str(passwd), amqtt_acl(hall, mqtt))
        mqtt = dataclasses.replace(mqtt, host=None, password_file=str(passwd),
                                   embedded_listen=f"{broker.host}:{broker.port}")
    return hall, mqtt, broker


class Floor:
    """The controller with its calling path on the secured broker, windows 5 and 6 staffed."""

    def __init__(self, hall, settings, broker, data_dir) -> None:
        self.ctrl, _ = open_hall(hall, data_dir, ManualClock(at("09:00")))
        self.health: list = []
        self.mqtt = controller_mqtt(hall, settings, self.health.append).start()
        self.floor = attach_devices(self.ctrl, None, {})
        self.calling = attach_calling(self.ctrl, self.floor, data_dir, {}, self.mqtt).start()
        self.ctrl.execute(c.Login(5, "zhaomin"), "staff:zhaomin")
        self.ctrl.execute(c.Login(6, "zhoutao"), "staff:zhoutao")
        for _ in range(3):
            self.ctrl.execute(c.IssueTicket("B"), "kiosk")
        self.broker = broker
        self.links: list[MqttLink] = []

    def device(self, account: str, status_topic: str, secret: str | None = None,
               username: str | None = "same", client_id: str | None = None) -> MqttLink:
        link = MqttLink(client_id or account, self.broker.host, self.broker.port, status_topic,
                        username=account if username == "same" else username,
                        password=secret if secret is not None else password(account)).start()
        self.links.append(link)
        return link

    def current(self, window: int) -> str | None:
        def current(state) -> str | None:
            t = state.windows[window].current
            return state.tickets[t].label if t else None
        return self.ctrl.ask(current)

    def commands_for(self, window: int) -> list[str]:
        return [r["name"] for r in self.ctrl.store.query(
            "SELECT name FROM commands WHERE json_extract(args, '$.window') = ? ORDER BY id", [window])]

    def close(self) -> None:
        for link in self.links:
            link.stop(0.5)
        self.calling.close()
        self.floor.close()
        self.mqtt.stop()
        self.ctrl.store.close()


@pytest.fixture
def floor(secured, tmp_path):
    hall, settings, broker = secured
    f = Floor(hall, settings, broker, tmp_path / "data")
    try:
        yield f
    finally:
        f.close()


def press(link: MqttLink, topic: str, key: str = "call_next") -> None:
    link.publish_command(topic, {"id": uuid.uuid4().hex, "key": key})


def test_window_5s_keypad_cannot_call_at_window_6_but_calls_at_its_own(floor):
    assert floor.mqtt.wait_connected(5), floor.health
    keypad5 = floor.device("keypad-05", "hall/window/5/keypad/status")
    assert keypad5.wait_connected(5)
    time.sleep(0.3)  # the controller's subscriptions are in place once it said online
    press(keypad5, "hall/window/6/keypad/press")  # dropped by the broker's ACL
    press(keypad5, "hall/window/5/keypad/press")
    # one client's messages arrive in order: once window 5 has called, window 6's would have too
    assert wait_for(lambda: floor.current(5) == "B001")
    time.sleep(0.3)
    assert floor.current(6) is None
    assert floor.commands_for(6) == ["login"]  # nothing was even tried at window 6

    keypad6 = floor.device("keypad-06", "hall/window/6/keypad/status")
    assert keypad6.wait_connected(5)
    press(keypad6, "hall/window/6/keypad/press")  # window 6's own keypad does call
    assert wait_for(lambda: floor.current(6) == "B002")


@pytest.mark.parametrize("who", ["anonymous", "wrong password", "unknown account"])
def test_a_client_without_valid_credentials_cannot_connect(floor, who):
    account, secret, username = {
        "anonymous": ("intruder", None, None),
        "wrong password": ("keypad-05", "not-the-password", "same"),
        "unknown account": ("keypad-07", None, "same"),  # in the ACL, but given no password
    }[who]
    link = floor.device(account, "hall/window/5/keypad/status", secret, username)
    assert not link.wait_connected(1.5)
    # the refusal (or the dropped connection) is reported; on a loaded machine it may come late
    assert wait_for(lambda: link.health is not None and link.health.state.value == "offline", 10)
    assert not link.connected
    # nor does anything it tried reach the hall
    press(link, "hall/window/5/keypad/press")
    time.sleep(0.3)
    assert floor.current(5) is None


@pytest.mark.parametrize("secured", ["mosquitto"], indirect=True)
def test_a_device_cannot_take_over_the_controllers_session_on_mosquitto(floor):
    """amqtt 0.12 cannot tie a client id to its account (controller/mqtt/broker.py says so)."""
    assert floor.mqtt.wait_connected(5)
    intruder = floor.device("keypad-05", "hall/window/5/keypad/status", client_id="hall-controller")
    assert intruder.wait_connected(5)
    time.sleep(0.5)
    assert floor.mqtt.connected
    assert [h.state.value for h in floor.health] == ["online"]


# --- the controller acts for the window whose topic a message came on ------------------------

def test_a_press_on_window_2s_topic_moves_window_2_only_whoever_sent_it(broker, tmp_path):
    """The controller subscribes each keypad's own topic and acts for the window the config
    gives that keypad; the message itself cannot name another window."""
    hall = dataclasses.replace(small_hall({1: ("A",), 2: ("A",)}), devices=(
        Device("tablet-1", "counter_keypad", "mqtt", topic="hall/window/1/keypad", window=1),
        Device("tablet-2", "counter_keypad", "mqtt", topic="hall/window/2/keypad", window=2)))
    ctrl, _ = open_hall(hall, tmp_path, ManualClock(at("09:00")))
    link = MqttLink("hall-controller", broker.host, broker.port, "hall/controller/status").start()
    floor = attach_devices(ctrl, None, {})
    calling = attach_calling(ctrl, floor, tmp_path, {}, link).start()
    sender = MqttLink("tablet-1", broker.host, broker.port, "hall/window/1/keypad/status").start()
    try:
        for n in (1, 2):
            ctrl.execute(c.Login(n, f"s{n}"), f"staff:s{n}")
            ctrl.execute(c.IssueTicket("A"), "kiosk")
        assert link.wait_connected(5) and sender.wait_connected(5)
        time.sleep(0.3)
        # window 1's tablet writes on window 2's topic (a keypad message names no window: the
        # codec refuses a "window" field)
        sender.publish_command("hall/window/2/keypad/press", {"id": "x1", "key": "call_next"})
        wait_for(lambda: ctrl.window(2).current)
        time.sleep(0.3)
        assert ctrl.window(1).current is None
        assert ctrl.ticket(ctrl.window(2).current).label == "A001"
    finally:
        sender.stop(0.5)
        calling.close()
        floor.close()
        link.stop()
        ctrl.store.close()


# --- the ACL and the settings --------------------------------------------------------------------

def test_each_device_account_writes_its_own_topics_only(tmp_path):
    hall = load_hall_from(tmp_path)
    by_id = {d.id: d for d in hall.devices}
    keypad = device_account(hall, by_id["keypad-05"])
    assert (keypad.username, keypad.write, keypad.read) == (
        "keypad-05", ("hall/window/5/keypad/press", "hall/window/5/keypad/status"),
        ("hall/window/5/display",))
    pad = device_account(hall, by_id["evaluator-05"])
    assert (pad.write, pad.read) == (("hall/window/5/evaluator/grade", "hall/window/5/evaluator/status"),
                                     ("hall/window/5/evaluator/state",))
    bar = device_account(hall, by_id["display-06"])
    assert (bar.write, bar.read) == (("hall/window/6/display/status",), ("hall/window/6/display",))
    assert device_account(hall, by_id["keypad-01"]) is None  # RS-485, no broker account
    ctrl = controller_account(hall, load_config_from(tmp_path).mqtt)
    assert "hall/window/6/keypad/press" in ctrl.read and "hall/window/6/display" in ctrl.write
    assert not set(ctrl.write) & {"hall/window/6/keypad/press", "hall/window/6/evaluator/grade"}


def load_config_from(tmp_path):
    toml = tmp_path / "hall.toml"
    secured_demo_toml(toml)
    return load_config(toml)


def load_hall_from(tmp_path):
    return load_config_from(tmp_path).hall


def test_the_controllers_password_comes_from_its_environment_variable(tmp_path, monkeypatch):
    config = load_config_from(tmp_path)
    assert "controller-secret" not in repr(config)
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    with pytest.raises(ConfigError) as e:
        controller_credentials(config.mqtt)
    assert e.value.key == "mqtt.password_env" and PASSWORD_ENV in e.value.reason
    monkeypatch.setenv(PASSWORD_ENV, "s3cret-value")
    assert controller_credentials(config.mqtt) == ("hall-controller", "s3cret-value")


def test_hallctl_run_refuses_to_start_without_the_password(tmp_path, monkeypatch, capsys):
    toml = tmp_path / "hall.toml"
    secured_demo_toml(toml)
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    assert main(["run", "--config", str(toml), "--data-dir", str(tmp_path / "data")]) == 2
    assert "mqtt.password_env" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()  # nothing started


def bad(tmp_path, edit) -> ConfigError:
    data = read_toml(secured_demo_path(tmp_path))
    edit(data)
    with pytest.raises(ConfigError) as e:
        parse_hall(data)
    return e.value


def secured_demo_path(tmp_path):
    toml = tmp_path / "hall.toml"
    secured_demo_toml(toml)
    return toml


def _device(data, device_id):
    return next(d for d in data["devices"] if d["id"] == device_id)


@pytest.mark.parametrize("edit, key, says", [
    (lambda d: d["mqtt"].pop("password_env"), "mqtt.username", "no password"),
    (lambda d: d["mqtt"].update(password="x"), "mqtt.password", "not both"),
    (lambda d: d["mqtt"].update(username="has space"), "mqtt.username", "broker user name"),
    (lambda d: _device(d, "keypad-06")["options"].update(username="keypad-05"),
     "devices[{keypad-06}].options.username", "duplicate broker account"),
    (lambda d: _device(d, "keypad-06").pop("options"), "devices[{keypad-06}].options.username",
     "its own account"),
    (lambda d: _device(d, "keypad-01")["options"].update(username="kp1"),
     "devices[{keypad-01}].options.username", "only MQTT devices"),
    (lambda d: d["mqtt"].update(password_file="/etc/x"), "mqtt.password_file", "embedded broker only"),
    (lambda d: d["mqtt"].pop("host"), "mqtt.password_file", "hallctl mqtt-passwd"),
])
def test_a_bad_mqtt_account_setting_names_its_key(tmp_path, edit, key, says):
    data = read_toml(secured_demo_path(tmp_path))
    index = {d["id"]: i for i, d in enumerate(data["devices"])}
    error = bad(tmp_path, edit)
    assert error.key == re.sub(r"\{([a-z0-9-]+)\}", lambda m: str(index[m[1]]), key)
    assert says in error.reason


def test_the_embedded_brokers_password_file_holds_hashes_only(tmp_path):
    path = tmp_path / "pw"
    set_password(path, "keypad-05", "first-password")
    set_password(path, "keypad-05", "second-password")  # replaced, not added
    set_password(path, "hall-controller", "third-password")
    lines = path.read_text().splitlines()
    assert [line.split(":", 1)[0] for line in lines] == ["keypad-05", "hall-controller"]
    assert all(line.split(":", 1)[1].startswith("$argon2") for line in lines)
    assert "password" not in path.read_text()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
