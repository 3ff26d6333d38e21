"""Personal data over time: a new key re-seals everything (`hallctl rotate-key`), and the personal
data of old visits and closed cases is purged (`[rules] personal_data_days`) while every figure
stays as it was."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag

from controller.backoffice import evaluation_reports as er
from controller.backoffice import hall_reports as hr
from controller.entrance.appointments import Appointments
from controller.backoffice.cases import CaseDesk
from controller.cli import main, open_hall
from controller.runtime.clock import ManualClock
from controller.config.hall import parse_hall
from controller.core import commands as c
from controller.core.callbacks import (
    Assign, CaseRules, Close, GiveFeedback, RecordCallback, Rectify, Verify,
)
from controller.core.errors import HallError
from controller.runtime.data_lock import hold_data_dir
from controller.security import personal_data
from controller.security.privacy import (
    ENV_KEY, PURGED, PURGED_ID_MASK, PURGED_NAME_MASK, IdentitySealer, read_secret,
)
from controller.config.tomlkeys import ConfigError, read_toml
from controller.config.workdays import hall_calendar
from tests.halls import at, small_hall
from tests.server import DEMO_CONFIG

ELDER, ELDER_NAME, ELDER_PHONE = "11010119500307097X", "张三丰", "13800131234"
OTHER, OTHER_NAME = "110101199003070978", "李四光"
SECRETS = (ELDER, ELDER_NAME, ELDER_PHONE, OTHER, OTHER_NAME)
# a Monday long enough ago for the demo hall's 180 days wherever the tests run
OLD_DAY = dt.date(2024, 3, 4)


class Hall:
    """A hall on disk with its case desk; the clock in the test's hand."""

    def __init__(self, data_dir: Path, when: dt.datetime, **rules) -> None:
        self.hall = small_hall({1: ("A",), 2: ("A",)}, **rules)
        self.dir = data_dir
        self.clock = ManualClock(when)
        self.ctrl, _ = open_hall(self.hall, data_dir, self.clock)
        self.desk = CaseDesk(self.ctrl, hall_calendar(None), CaseRules.from_rules(self.hall.rules))
        self.desk.start()

    def visit(self, id_number: str | None, name: str | None = None, phone: str | None = None,
              grade: str | None = None) -> str:
        citizen = self.ctrl.citizen(id_number, name, phone) if id_number else None
        if self.ctrl.day() != self.clock().date() or not self.ctrl.window(2).staff_id:
            self.ctrl.execute(c.Login(2, "s2"), "staff:s2")  # a new day closed the window
        ticket = self.ctrl.execute(c.IssueTicket("A", citizen=citizen), "kiosk").ticket
        self.ctrl.execute(c.CallNext(2), "staff:s2")
        self.clock.advance(minutes=6)
        self.ctrl.execute(c.Finish(2), "staff:s2")
        if grade:
            self.ctrl.execute(c.Evaluate(2, grade, "pad"), "pad:2")
        return ticket.id

    def work_to_closed(self, case_id: str) -> None:
        for cmd in (Assign("boss"), RecordCallback(True, "已致电"), Verify(True, "属实"),
                    Rectify("培训"), GiveFeedback("已告知"), Close()):
            self.desk.act(case_id, cmd, "staff:boss")

    def a_day_of_visits(self) -> dict[str, str]:
        """A real-name bad review worked to closed, an anonymous 满意, a booking by name, and a
        complaint by name still open."""
        bad = self.visit(ELDER, ELDER_NAME, ELDER_PHONE, grade="非常不满意")
        [case] = [x for x in self.desk.list() if x.ticket_id == bad]
        self.work_to_closed(case.id)
        good = self.visit(None, grade="满意")
        Appointments(self.ctrl).book("A", self.clock() + dt.timedelta(days=1), "staff:boss",
                                     OTHER, OTHER_NAME, code="APT-OLD")
        complaint = self.desk.open_complaint("phone", "等候太久", "staff:boss", id_number=OTHER,
                                             name=OTHER_NAME, phone="13912345678")
        return {"bad": bad, "good": good, "case": case.id, "complaint": complaint.id}

    def figures(self, day_from: dt.date, day_to: dt.date, now: dt.datetime) -> list:
        with self.ctrl.store.reads.snapshot() as db:  # as the reports read: a reader of their own
            reports = [hr.hall_figures(db, self.hall, day_from, day_to, by, now)
                       for by in ("service", "day", "staff", "window")] + [
                er.evaluation_report(db, day_from, day_to, by, now)
                for by in ("window", "staff", "service", "day", "month")]
        return reports + [self.desk.figures(day_from, day_to, now)]

    def export(self, day_from: dt.date, day_to: dt.date) -> list[dict]:
        with self.ctrl.store.reads.snapshot() as db:
            return er.grade_export(db, day_from, day_to)

    def rows(self, sql: str, params=()) -> list[dict]:
        return self.ctrl.store.query(sql, params)

    def close(self) -> None:
        self.desk.stop()
        self.ctrl.store.close()


@pytest.fixture
def hall_dir(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_KEY, raising=False)
    return tmp_path / "data"


def sealed_fields(rows_of) -> list[str]:
    """Every sealed value in the database (not the purge marker)."""
    out = []
    for r in rows_of("SELECT identity_sealed, phone_sealed FROM tickets"):
        out += [v for v in r.values() if v is not None]
    out += [r["identity_sealed"] for r in rows_of("SELECT identity_sealed FROM appointments")
            if r["identity_sealed"]]
    for r in rows_of("SELECT body FROM cases"):
        body = json.loads(r["body"])
        out += [body[k] for k in ("identity_sealed", "phone_sealed") if body[k] not in (None, PURGED)]
    return out


def database_bytes(data_dir: Path) -> list[bytes]:
    return [f.read_bytes() for f in data_dir.iterdir() if f.name.startswith("hall.sqlite3")]


# --- key rotation --------------------------------------------------------------------------------

def test_after_rotation_everything_opens_with_the_new_key_only_and_lookups_still_work(hall_dir):
    h = Hall(hall_dir, at("09:00", OLD_DAY))
    ids = h.a_day_of_visits()
    waiting = h.ctrl.execute(c.IssueTicket("A", citizen=h.ctrl.citizen(ELDER, ELDER_NAME)), "kiosk")
    before = sealed_fields(h.rows)
    # identity and phone of the reviewed ticket, its case and the complaint; the booking's and
    # the waiting ticket's identity
    assert len(before) == 8
    h.close()
    old_key = read_secret(hall_dir / "secret.key")

    assert main(["rotate-key", "--data-dir", str(hall_dir)]) == 0

    [kept] = list(hall_dir.glob("secret.key.old-*"))
    assert read_secret(kept) == old_key != read_secret(hall_dir / "secret.key")
    old, new = IdentitySealer(old_key), IdentitySealer(read_secret(hall_dir / "secret.key"))
    h = Hall(hall_dir, at("09:30", OLD_DAY))
    try:
        after = sealed_fields(h.rows)
        assert len(after) == len(before) and not set(after) & set(before)
        for value in after:
            new.open(value)
            with pytest.raises(InvalidTag):  # AES-GCM: sealed with another key
                old.open(value)
        # the lookup key is re-made with the new key: one waiting ticket per person still holds
        assert h.ctrl.store.ticket(waiting.ticket.id).citizen_key == new.key(ELDER)
        with pytest.raises(HallError) as e:
            h.ctrl.execute(c.IssueTicket("A", citizen=h.ctrl.citizen(ELDER, ELDER_NAME)), "kiosk")
        assert e.value.code == "already_waiting"
        [appointment] = h.rows("SELECT citizen_key FROM appointments")
        assert appointment["citizen_key"] == new.key(OTHER)
        # the callback officer's unmasked view opens with the new key
        view = h.desk.view(h.desk.get(ids["case"]), True, "staff:boss")
        assert view["citizen"]["id_number"] == ELDER and view["citizen"]["phone"] == ELDER_PHONE
        [row] = h.rows("SELECT actor, args FROM commands WHERE name = 'secret_key_rotated'")
        assert row["actor"].startswith("hallctl:")
        # the lookup keys: two tickets, the booking, the two cases
        assert json.loads(row["args"]) == {"sealed": 8, "keys": 5}
        h.ctrl.store.checkpoint()
    finally:
        h.close()
    for raw in database_bytes(hall_dir):
        for secret in SECRETS:
            assert secret.encode() not in raw and secret.encode("utf-16-le") not in raw
        for value in before:  # nor is anything left sealed with the old key
            assert value.encode() not in raw


def test_rotate_key_refuses_while_the_controller_runs_or_when_the_key_is_in_the_environment(
        hall_dir, monkeypatch, capsys):
    h = Hall(hall_dir, at("09:00", OLD_DAY))
    h.visit(ELDER, ELDER_NAME)
    h.close()
    held = hold_data_dir(hall_dir, "run the controller")  # as `hallctl run` does
    try:
        assert main(["rotate-key", "--data-dir", str(hall_dir)]) == 1
        assert "hall.lock" in capsys.readouterr().err
    finally:
        held.close()
    monkeypatch.setenv(ENV_KEY, base64.urlsafe_b64encode(read_secret(hall_dir / "secret.key")).decode())
    assert main(["rotate-key", "--data-dir", str(hall_dir)]) == 1
    assert "HALL_SECRET_KEY" in capsys.readouterr().err
    assert not list(hall_dir.glob("secret.key.*"))  # nothing was changed


def test_an_interrupted_rotation_stops_the_hall_until_it_is_finished(hall_dir, monkeypatch, capsys):
    h = Hall(hall_dir, at("09:00", OLD_DAY))
    h.visit(ELDER, ELDER_NAME, ELDER_PHONE)
    h.close()

    def power_cut(*_):
        raise KeyboardInterrupt("power cut after the database was committed")

    with monkeypatch.context() as m:
        m.setattr(personal_data, "_swap_key_files", power_cut)
        with pytest.raises(KeyboardInterrupt):
            main(["rotate-key", "--data-dir", str(hall_dir)])
    assert (hall_dir / "secret.key.new").exists()
    with pytest.raises(RuntimeError, match="rotate-key"):
        Hall(hall_dir, at("09:30", OLD_DAY))  # the old key would not open the data

    assert main(["rotate-key", "--data-dir", str(hall_dir)]) == 0
    assert "finished an interrupted rotation" in capsys.readouterr().out
    h = Hall(hall_dir, at("09:30", OLD_DAY))
    try:
        [t] = h.rows("SELECT identity_sealed FROM tickets")
        assert h.ctrl.sealer.open(t["identity_sealed"]) == (ELDER, ELDER_NAME)
    finally:
        h.close()


# --- retention -----------------------------------------------------------------------------------

def test_the_day_change_purges_old_personal_data_and_every_figure_stays(hall_dir):
    h = Hall(hall_dir, at("09:00", OLD_DAY), personal_data_days=30)
    try:
        old = h.a_day_of_visits()
        h.clock.now = at("09:00", OLD_DAY + dt.timedelta(days=14))
        recent = h.visit(ELDER, ELDER_NAME, ELDER_PHONE, grade="满意")
        later = at("09:00", OLD_DAY + dt.timedelta(days=35))
        span = (OLD_DAY, later.date())
        figures, export = h.figures(*span, later), h.export(*span)

        h.clock.now = later
        h.ctrl.tick()  # the first tick of the day

        t = h.ctrl.store.ticket(old["bad"])
        assert (t.identity_sealed, t.phone_sealed, t.citizen_key) == (None, None, None)
        assert (t.id_masked, t.name_masked) == (PURGED_ID_MASK, PURGED_NAME_MASK)
        assert (t.grade, t.status.value, t.window, t.staff_id) == ("非常不满意", "finished", 2, "s2")
        kept = h.ctrl.store.ticket(recent)  # 21 days old: kept
        assert h.ctrl.sealer.open(kept.identity_sealed) == (ELDER, ELDER_NAME)
        assert kept.id_masked == "1101**********097X"
        [appointment] = h.rows("SELECT * FROM appointments")
        assert (appointment["identity_sealed"], appointment["citizen_key"]) == (None, None)
        assert appointment["id_masked"] == PURGED_ID_MASK
        case = h.desk.get(old["case"])
        assert (case.identity_sealed, case.phone_sealed, case.citizen_key) == (PURGED, PURGED, None)
        assert case.state.value == "closed" and case.grade == "非常不满意"
        complaint = h.desk.get(old["complaint"])  # still open: the officer still needs to call
        assert h.ctrl.sealer.open(complaint.identity_sealed) == (OTHER, OTHER_NAME)

        assert h.figures(*span, later) == figures
        # the grade export keeps every row and figure; the old visit no longer says whose it was
        assert h.export(*span) == [
            {**row, "id_masked": PURGED_ID_MASK, "name_masked": PURGED_NAME_MASK}
            if row["ticket"] == old["bad"] else row for row in export]

        view = h.desk.view(case, True, "staff:boss")
        assert view["citizen"] == {"id_masked": None, "name_masked": None, "phone_masked": None,
                                   "purged": True, "id_number": None, "name": None, "phone": None}
        [row] = h.rows("SELECT actor, args FROM commands WHERE name = 'personal_data_purged'")
        assert row["actor"] == "system"
        assert json.loads(row["args"]) == {"days": 30, "before": "2024-03-09", "tickets": 1,
                                           "appointments": 1, "cases": 1, "reminders": 0}
        h.clock.advance(minutes=1)
        h.ctrl.tick()  # once a day
        assert len(h.rows("SELECT 1 FROM commands WHERE name = 'personal_data_purged'")) == 1
    finally:
        h.close()


def test_hallctl_purge_uses_the_halls_setting_and_is_audited(hall_dir, capsys):
    h = Hall(hall_dir, at("09:00", OLD_DAY))
    ids = h.a_day_of_visits()
    h.close()
    assert main(["purge", "--data-dir", str(hall_dir), "--config", str(DEMO_CONFIG)]) == 0
    assert capsys.readouterr().out == ("personal data older than 180 days removed from 1 tickets, "
                                       "1 appointments and 1 closed cases\n")
    h = Hall(hall_dir, at("09:00", OLD_DAY))
    try:
        assert h.ctrl.store.ticket(ids["bad"]).identity_sealed is None
        [row] = h.rows("SELECT actor, args FROM commands WHERE name = 'personal_data_purged'")
        assert row["actor"].startswith("hallctl:")
        assert json.loads(row["args"])["days"] == 180 and json.loads(row["args"])["tickets"] == 1
        assert sealed_fields(h.rows) == [h.desk.get(ids["complaint"]).identity_sealed,
                                         h.desk.get(ids["complaint"]).phone_sealed]
    finally:
        h.close()


@pytest.mark.parametrize("value, says", [
    (0, "an integer from 1 to 3650"),
    ("180", "an integer from 1 to 3650"),
    (7, "more days than evaluation_default_days (7)"),
])
def test_a_bad_retention_setting_names_its_key(value, says):
    data = read_toml(DEMO_CONFIG)
    data["rules"]["personal_data_days"] = value
    with pytest.raises(ConfigError) as e:
        parse_hall(data)
    assert e.value.key == "rules.personal_data_days" and says in e.value.reason


def test_the_retention_setting_defaults_to_180_days():
    assert parse_hall(read_toml(DEMO_CONFIG)).rules.personal_data_days == 180
    data = read_toml(DEMO_CONFIG)
    data["rules"]["personal_data_days"] = 365
    assert parse_hall(data).rules.personal_data_days == 365

