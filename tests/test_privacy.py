"""Personal data at rest: sealed, findable by key, never in plain text on disk."""

from __future__ import annotations

import os

import pytest
from cryptography.exceptions import InvalidTag

from controller.runtime.clock import ManualClock
from controller.cli import open_hall
from controller.core import commands as c
from controller.core.errors import HallError
from controller.security.privacy import ENV_KEY, IdentitySealer, load_secret
from tests.halls import at, small_hall

ELDER = "11010119500307097X"


def test_seal_opens_only_with_the_same_secret():
    sealer = IdentitySealer(b"s" * 32)
    sealed = sealer.seal(ELDER, "张三")
    assert sealer.open(sealed) == (ELDER, "张三")
    assert sealer.seal(ELDER, "张三") != sealed  # a fresh nonce each time
    with pytest.raises(InvalidTag):  # AES-GCM: sealed with another key
        IdentitySealer(b"t" * 32).open(sealed)


def test_lookup_key_is_stable_and_secret_dependent():
    a, b = IdentitySealer(b"s" * 32), IdentitySealer(b"t" * 32)
    assert a.key(ELDER) == a.key(ELDER) != b.key(ELDER)
    assert ELDER not in a.key(ELDER)


def test_a_wrong_number_is_refused():
    with pytest.raises(HallError) as e:
        IdentitySealer(b"s" * 32).citizen("110101195003070971")
    assert e.value.code == "invalid_id_number"


def test_secret_file_is_made_once_and_private(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_KEY, raising=False)
    first = load_secret(tmp_path)
    assert load_secret(tmp_path) == first and len(first) == 32
    assert oct(os.stat(tmp_path / "secret.key").st_mode & 0o777) == "0o600"


def test_the_database_file_holds_no_id_number_or_name(tmp_path):
    ctrl, _ = open_hall(small_hall(), tmp_path, ManualClock(at("09:00")))
    t = ctrl.execute(c.IssueTicket("A", citizen=ctrl.citizen(ELDER, "张三丰")), "kiosk").ticket
    assert (t.id_masked, t.name_masked) == ("1101**********097X", "张**")
    assert ctrl.sealer.open(ctrl.store.ticket(t.id).identity_sealed) == (ELDER, "张三丰")
    ctrl.store.checkpoint()
    ctrl.store.close()
    for f in tmp_path.iterdir():
        if f.name.startswith("hall.sqlite3"):
            raw = f.read_bytes()
            # the birth date served the age rule at issue and is not kept either
            for secret in (ELDER, "张三丰", ELDER[6:14], "1950-03-07"):
                assert secret.encode() not in raw and secret.encode("utf-16-le") not in raw
