"""A live hall whose broker anyone on the network can reach without an account does not start.

Without accounts, any client on the LAN can press window 6's keys or grade its visits (the
embedded broker takes anyone). The demo runs that way on loopback; a hall that has left the demo
behind, with its broker listening on the network and no accounts, fails `hallctl check-config`
and `hallctl run` refuses it, unless the config says `allow_anonymous = true` on purpose.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from controller.security.pins import hash_pin
from tests.server import DEMO_CONFIG, REPO

REAL_HASH = hash_pin("80731", iterations=1000)


def live_hall(tmp_path, mqtt: str, demo: bool = False):
    """The demo hall made live (its accounts no longer demo ones, real PINs) with these [mqtt]
    lines."""
    text = DEMO_CONFIG.read_text(encoding="utf-8")
    if not demo:
        text = re.sub(r"\ndemo = true\n", "\n", text)
        text = re.sub(r'pin_hash = "[^"]+"', f'pin_hash = "{REAL_HASH}"', text)
    text, n = re.subn(r'embedded_listen = "127\.0\.0\.1:\d+"', mqtt, text)
    assert n == 1
    path = tmp_path / "hall.toml"
    path.write_text(text, encoding="utf-8")
    return path


def hallctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "controller.cli", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("mqtt", ['embedded_listen = "0.0.0.0:18830"',
                                  'embedded_listen = "192.168.10.2:18830"',
                                  'host = "192.168.10.5"\nport = 1883'])
def test_a_live_hall_with_an_open_broker_on_the_network_fails_check_config(tmp_path, mqtt):
    config = live_hall(tmp_path, mqtt)
    checked = hallctl("check-config", str(config))
    assert checked.returncode == 2, checked.stdout
    assert "mqtt.allow_anonymous" in checked.stderr and "hallctl mqtt-acl" in checked.stderr
    ran = hallctl("run", "--config", str(config), "--data-dir", str(tmp_path / "data"))
    assert ran.returncode == 2 and "mqtt.allow_anonymous" in ran.stderr
    assert not (tmp_path / "data").exists()  # nothing started, nothing listened


@pytest.mark.parametrize("mqtt, demo", [
    ('embedded_listen = "0.0.0.0:18830"\nallow_anonymous = true', False),  # said on purpose
    ('embedded_listen = "127.0.0.1:18830"', False),  # nobody else can reach it
    ('host = "localhost"\nport = 1883', False),
    ('embedded_listen = "0.0.0.0:18830"', True),  # the demo, with its PIN-1234 accounts
])
def test_a_broker_without_accounts_is_allowed_on_loopback_in_the_demo_or_when_said(
        tmp_path, mqtt, demo):
    checked = hallctl("check-config", str(live_hall(tmp_path, mqtt, demo)))
    assert checked.returncode == 0, checked.stderr


def test_allow_anonymous_with_accounts_is_a_contradiction(tmp_path):
    config = live_hall(tmp_path, 'host = "192.168.10.5"\nusername = "hall-controller"\n'
                                 'password_env = "HALL_MQTT_PASSWORD"\nallow_anonymous = true')
    checked = hallctl("check-config", str(config))
    assert checked.returncode == 2 and "mqtt.allow_anonymous" in checked.stderr
