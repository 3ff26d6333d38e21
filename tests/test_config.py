"""The hall config file: the demo hall loads, and every mistake names its key."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from controller.config.hall import ConfigError, load_config, load_hall, parse_config, parse_hall, summary
from controller.core.hall import Deadline, NoShowPolicy, Rules, TransferPosition, WindowKind
from controller.security.pins import DEMO_PIN, hash_pin, is_valid_pin_hash, verify_pin

DEMO_HALL = Path(__file__).resolve().parent.parent / "config" / "demo-hall.toml"

# Few iterations keep the tests fast; the format is the same.
DEMO_HASH = hash_pin(DEMO_PIN, iterations=1000)
REAL_HASH = hash_pin("80731", iterations=1000)


def minimal_hall_dict() -> dict[str, Any]:
    """A small valid hall: two services, two windows, two staff, one device."""
    return {
        "hall": {"name": "测试便民服务中心", "region_code": "500101"},
        "hours": {"mon": {"sessions": ["09:00-12:00", "13:30-17:30"], "breaks": ["10:30-10:50"]}},
        "rules": {},
        "services": [
            {"prefix": "A", "name": "社保医保", "kind": "人力社保", "mean_minutes": 8},
            {"prefix": "B", "name": "不动产登记", "kind": "不动产", "mean_minutes": 20.5},
        ],
        "windows": [
            {"number": 1, "name": "1号窗口", "kind": "综合受理", "services": ["A", "B"]},
            {"number": 2, "name": "2号窗口", "kind": "general", "services": ["B"]},
        ],
        "staff": [
            {"id": "zhangli", "name": "张丽", "role": "staff", "pin_hash": DEMO_HASH, "a_post": [1], "demo": True},
            {"id": "wangqiang", "name": "王强", "role": "staff", "pin_hash": REAL_HASH, "a_post": [2], "b_post": [1]},
        ],
        "devices": [
            {
                "id": "evaluator-01",
                "kind": "evaluator_pad",
                "transport": "serial",
                "port": "/dev/ttyUSB1",
                "window": 1,
                "options": {"address": "11", "baud": 9600},
            },
        ],
        "mqtt": {"embedded_listen": "127.0.0.1:18830"},
    }


Edit = Callable[[dict[str, Any]], None]


def _parent(data: dict[str, Any], path: tuple[Any, ...]) -> Any:
    for step in path[:-1]:
        data = data[step]
    return data


def put(*path: Any) -> Callable[[Any], Edit]:
    """put("windows", 0, "number")(5): an edit that sets that value."""

    def with_value(value: Any) -> Edit:
        def edit(data: dict[str, Any]) -> None:
            _parent(data, path)[path[-1]] = value

        return edit

    return with_value


def drop(*path: Any) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        del _parent(data, path)[path[-1]]

    return edit


def add_device(**device: Any) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        data["devices"].append(device)

    return edit


# --- the demo hall -------------------------------------------------------------


def test_demo_hall_loads_with_a_full_floor() -> None:
    hall = load_hall(DEMO_HALL)
    assert hall.name == "万州区政务服务中心"
    assert hall.region_code == "500101"
    assert set(hall.hours) == {"mon", "tue", "wed", "thu", "fri"}
    assert len(hall.services) >= 8
    assert len(hall.windows) >= 16
    assert len({w.kind for w in hall.windows.values()}) >= 5
    assert sum(w.tidal for w in hall.windows.values()) == 2
    for kind in (WindowKind.COMPLAINTS, WindowKind.ASSISTED, WindowKind.CROSS_REGION, WindowKind.TIDAL):
        assert any(w.kind is kind for w in hall.windows.values()), kind
    mqtt = load_config(DEMO_HALL).mqtt
    assert mqtt.host is None and mqtt.embedded_listen == "127.0.0.1:18830"


def test_demo_hall_opening_hours_follow_wanzhou_attendance_rules() -> None:
    monday = load_hall(DEMO_HALL).hours["mon"]
    assert [(s.start.isoformat("minutes"), s.end.isoformat("minutes")) for s in monday.sessions] == [
        ("09:00", "12:00"),
        ("13:30", "17:30"),
    ]
    assert [b.start.isoformat("minutes") for b in monday.breaks] == ["10:30", "15:30"]


def test_demo_hall_every_window_has_an_a_post_and_the_roles_exist() -> None:
    hall = load_hall(DEMO_HALL)
    a_posts = {n for s in hall.staff.values() for n in s.a_post}
    assert a_posts == set(hall.windows)
    roles = {s.role.value for s in hall.staff.values()}
    assert {"staff", "supervisor", "callback_officer", "admin"} <= roles
    assert sum(1 for s in hall.staff.values() if s.b_post) >= 3
    assert all(s.demo and verify_pin(DEMO_PIN, s.pin_hash) for s in hall.staff.values())


def test_demo_hall_devices() -> None:
    hall = load_hall(DEMO_HALL)
    kinds = [d.kind for d in hall.devices]
    assert kinds.count("ticket_printer") == 1 and kinds.count("id_reader") == 1
    assert kinds.count("hall_display") == 1
    for kind in ("counter_keypad", "evaluator_pad", "caller_display"):
        assert {d.window for d in hall.devices if d.kind == kind} == set(hall.windows), kind
    keypad = next(d for d in hall.devices if d.id == "keypad-01")
    assert keypad.transport == "serial" and dict(keypad.options)["address"] == "1"


def test_summary_tells_what_was_loaded() -> None:
    text = summary(load_config(DEMO_HALL))
    assert "万州区政务服务中心" in text and "500101" in text
    assert "windows: 20" in text and "潮汐服务" in text
    assert "demo accounts: yes" in text


# --- a minimal hall and its defaults ---------------------------------------------


def test_minimal_hall_takes_the_defaults() -> None:
    hall = parse_hall(minimal_hall_dict())
    assert hall.timezone == "Asia/Shanghai"
    assert hall.rules.pause_limit_minutes == 15
    assert hall.rules.no_show is NoShowPolicy.REQUEUE_ONCE
    assert hall.windows[2].kind is WindowKind.GENERAL and hall.windows[2].tidal is False
    assert hall.services["A"].mean_minutes == 8.0 and hall.services["A"].priority_first is True
    assert hall.windows[1].services == ("A", "B")
    assert hall.devices[0].options == (("address", "11"), ("baud", "9600"))
    config = parse_config(minimal_hall_dict())
    assert config.mqtt.port == 1883 and config.mqtt.host is None
    assert "demo accounts: yes (1" in summary(config)


def test_every_rule_can_be_set() -> None:
    data = minimal_hall_dict()
    data["rules"] = {
        "pause_limit_minutes": 10,
        "no_show": "drop",
        "transfer_position": "back",
        "priority_age": 65,
        "tickets_open_before_minutes": 0,
        "ticket_cutoff_minutes": 45,
        "appointment_early_minutes": 15,
        "near_closing_minutes": 45,
        "waiting_tickets_per_person": 2,
        "tickets_per_person_per_day": 6,
        "kiosk_tickets_per_minute": 12,
        "address_tickets_per_minute": 0,
        "kiosk_identity_seconds": 20,
        "login_failures_per_staff": 3,
        "login_failures_per_address": 30,
        "login_failure_minutes": 10,
        "tidal_open_waiting": 15,
        "tidal_open_wait_minutes": 40,
        "staff_expected_minutes": 20,
        "idle_alert_seconds": 90,
        "evaluation_default_grade": "非常满意",
        "evaluation_default_days": 7,
        "evaluation_prompt_seconds": 90,
        "callback_deadline": "1 day",
        "rectify_deadline": "15 working days",
        "complaint_feedback_deadline": "2 working days",
        "complaint_resolve_deadline": "5 working days",
        "personal_data_days": 90,
    }
    rules = parse_hall(data).rules
    assert set(data["rules"]) == {f.name for f in dataclasses.fields(Rules)}
    assert rules.no_show is NoShowPolicy.DROP and rules.transfer_position is TransferPosition.BACK
    assert rules.ticket_cutoff_minutes == 45 and rules.evaluation_default_grade == "非常满意"
    assert rules.kiosk_identity_seconds == 20
    assert rules.callback_deadline == Deadline(1, False) and rules.rectify_deadline == Deadline(15, True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 working day", Deadline(1, True)),
        ("5 working days", Deadline(5, True)),
        ("15 days", Deadline(15, False)),
        ("1 day", Deadline(1, False)),
    ],
)
def test_deadlines_read_as_amount_and_kind_of_day(text: str, expected: Deadline) -> None:
    data = minimal_hall_dict()
    data["rules"]["rectify_deadline"] = text
    assert parse_hall(data).rules.rectify_deadline == expected


def test_window_kind_by_english_name_in_any_case() -> None:
    data = minimal_hall_dict()
    data["windows"][0]["kind"] = "Tidal"
    assert parse_hall(data).windows[1].kind is WindowKind.TIDAL


# --- bad configs: each names its key ------------------------------------------------

BAD_CONFIGS: list[tuple[str, Edit, str, str]] = [
    ("typo at top level", put("hall_")({}), "hall_", "unknown key"),
    ("typo in a service", put("services", 0, "mean_minuts")(8),
     "services[0].mean_minuts", "did you mean 'mean_minutes'"),
    ("no [hall]", drop("hall"), "hall", "missing"),
    ("hall name missing", drop("hall", "name"), "hall.name", "missing"),
    ("hall name empty", put("hall", "name")("  "), "hall.name", "non-empty string"),
    ("region code unquoted", put("hall", "region_code")(500101), "hall.region_code", "found integer 500101"),
    ("region code short", put("hall", "region_code")("50010"), "hall.region_code", "6 digits"),
    ("unknown time zone", put("hall", "timezone")("Asia/Chongqing_"), "hall.timezone", "unknown time zone"),
    ("span with a tilde", put("hours", "mon", "sessions", 1)("13:30~17:30"), "hours.mon.sessions[1]", "HH:MM-HH:MM"),
    ("span backwards", put("hours", "mon", "sessions", 0)("12:00-09:00"), "hours.mon.sessions[0]", "ends before"),
    ("hour 25", put("hours", "mon", "sessions", 0)("09:00-25:00"), "hours.mon.sessions[0]", "not a time of day"),
    ("sessions overlap", put("hours", "mon", "sessions")(["09:00-12:00", "11:00-17:00"]),
     "hours.mon.sessions[1]", "overlap"),
    ("break outside", put("hours", "mon", "breaks")(["12:10-12:30"]), "hours.mon.breaks[0]", "not inside any session"),
    ("no open day", put("hours")({}), "hours", "no weekday is open"),
    ("weekday spelt out", put("hours", "monday")({"sessions": ["09:00-12:00"]}), "hours.monday", "unknown key"),
    ("day with no sessions", put("hours", "tue")({"sessions": []}), "hours.tue.sessions", "leave it out"),
    ("pause limit zero", put("rules", "pause_limit_minutes")(0), "rules.pause_limit_minutes", "from 1 to 240"),
    ("bool is not int", put("rules", "pause_limit_minutes")(True), "rules.pause_limit_minutes", "found boolean true"),
    ("no-show policy", put("rules", "no_show")("ignore"), "rules.no_show", '"requeue_once"'),
    ("transfer position", put("rules", "transfer_position")("front"), "rules.transfer_position", '"original_time"'),
    ("priority age", put("rules", "priority_age")(30), "rules.priority_age", "from 50 to 120"),
    ("default grade", put("rules", "evaluation_default_grade")("好"), "rules.evaluation_default_grade", "基本满意"),
    ("deadline in weeks", put("rules", "rectify_deadline")("2 weeks"), "rules.rectify_deadline", "working days"),
    ("deadline zero", put("rules", "callback_deadline")("0 days"), "rules.callback_deadline", "from 1 to 90"),
    ("unknown rule", put("rules", "pause_limit")(15), "rules.pause_limit", "did you mean 'pause_limit_minutes'"),
    ("services as table", put("services")({"prefix": "A"}), "services", "array"),
    ("no services", put("services")([]), "services", "at least one"),
    ("duplicate prefix", put("services", 1, "prefix")("A"), "services[1].prefix", "already used at services[0].prefix"),
    ("lowercase prefix", put("services", 0, "prefix")("a"), "services[0].prefix", "uppercase"),
    ("mean minutes zero", put("services", 0, "mean_minutes")(0), "services[0].mean_minutes", "greater than 0"),
    ("mean minutes text", put("services", 0, "mean_minutes")("8"), "services[0].mean_minutes", "found string '8'"),
    ("service unserved", put("windows", 0, "services")(["B"]), "services[0].prefix", "no window serves 'A'"),
    ("duplicate window", put("windows", 1, "number")(1), "windows[1].number", "duplicate window number"),
    ("window number range", put("windows", 0, "number")(10000), "windows[0].number", "from 1 to 9999"),
    ("window kind", put("windows", 0, "kind")("lounge"), "windows[0].kind", "综合受理"),
    ("window unknown service", put("windows", 0, "services", 1)("Z"),
     "windows[0].services[1]", "no service has prefix 'Z'"),
    ("window service twice", put("windows", 0, "services")(["A", "A"]), "windows[0].services[1]", "listed twice"),
    ("window no services", put("windows", 1, "services")([]), "windows[1].services", "at least one"),
    ("tidal as text", put("windows", 0, "tidal")("yes"), "windows[0].tidal", "true or false"),
    ("no windows", put("windows")([]), "windows", "at least one"),
    ("staff id with space", put("staff", 0, "id")("zhang li"), "staff[0].id", "letters, digits"),
    ("duplicate staff id", put("staff", 1, "id")("zhangli"), "staff[1].id", "duplicate staff id"),
    ("staff role", put("staff", 0, "role")("boss"), "staff[0].role", '"supervisor"'),
    ("plain PIN", put("staff", 1, "pin_hash")("5678"), "staff[1].pin_hash", "hallctl hash-pin"),
    ("plain PIN as integer", put("staff", 1, "pin_hash")(5678), "staff[1].pin_hash", "plain PIN"),
    ("other hash", put("staff", 1, "pin_hash")("md5$abc"), "staff[1].pin_hash", "pbkdf2_sha256$"),
    ("demo PIN not demo", put("staff", 1, "pin_hash")(DEMO_HASH), "staff[1].pin_hash", "demo PIN 1234"),
    ("A post unknown window", put("staff", 0, "a_post")([99]), "staff[0].a_post[0]", "no window 99"),
    ("B post same as A post", put("staff", 0, "b_post")([1]), "staff[0].b_post", "already this person's A post"),
    ("staff without post", drop("staff", 0, "a_post"), "staff[0].a_post", "at least one window"),
    ("device kind", put("devices", 0, "kind")("fax"), "devices[0].kind", '"ticket_printer"'),
    ("device transport", put("devices", 0, "transport")("bluetooth"), "devices[0].transport", '"serial"'),
    ("serial without port", drop("devices", 0, "port"), "devices[0].port", "missing"),
    ("driver setting at top", put("devices", 0, "baud")("9600"), "devices[0].baud", "options = {"),
    ("option as bool", put("devices", 0, "options", "echo")(True), "devices[0].options.echo", "string or an integer"),
    ("pad without window", drop("devices", 0, "window"), "devices[0].window", "belongs to one counter window"),
    ("device unknown window", put("devices", 0, "window")(42), "devices[0].window", "no window 42"),
    ("port on tcp", put("devices", 0, "transport")("tcp"), "devices[0].port", "not used by transport 'tcp'"),
    (
        "tcp port out of range",
        add_device(id="printer", kind="ticket_printer", transport="tcp", address="10.0.0.5:99999"),
        "devices[1].address",
        "from 1 to 65535",
    ),
    (
        "usb address not vid:pid",
        add_device(id="printer", kind="ticket_printer", transport="usb", address="printer"),
        "devices[1].address",
        "vid:pid",
    ),
    (
        "mqtt device without topic",
        add_device(id="screen", kind="hall_display", transport="mqtt"),
        "devices[1].topic",
        "missing",
    ),
    (
        "mqtt topic wildcard",
        add_device(id="screen", kind="hall_display", transport="mqtt", topic="hall/#"),
        "devices[1].topic",
        "without wildcards",
    ),
    (
        "duplicate device id",
        add_device(id="evaluator-01", kind="hall_display", transport="mqtt", topic="hall/display"),
        "devices[1].id",
        "duplicate device id",
    ),
    ("mqtt port", put("mqtt", "port")(0), "mqtt.port", "from 1 to 65535"),
    ("embedded listen", put("mqtt", "embedded_listen")("localhost"), "mqtt.embedded_listen", "host:port"),
    ("mqtt typo", put("mqtt", "hots")("broker.local"), "mqtt.hots", "did you mean 'host'"),
]


@pytest.mark.parametrize(("edit", "key", "reason"), [c[1:] for c in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_names_its_key(edit: Edit, key: str, reason: str) -> None:
    data = copy.deepcopy(minimal_hall_dict())
    edit(data)
    with pytest.raises(ConfigError) as caught:
        parse_hall(data, source="hall.toml")
    assert caught.value.key == key
    assert reason in caught.value.reason
    assert str(caught.value) == f"hall.toml: {key}: {caught.value.reason}"


def test_toml_syntax_error_gives_the_line(tmp_path: Path) -> None:
    path = tmp_path / "hall.toml"
    path.write_text('[hall]\nname = "万州"\nregion_code = 500101"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_hall(path)
    assert caught.value.key == "(file)"
    assert "not valid TOML" in caught.value.reason and "line 3" in caught.value.reason
    assert str(caught.value).startswith(f"{path}: (file): ")


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_hall(tmp_path / "nowhere.toml")
    assert caught.value.key == "(file)" and "cannot read" in caught.value.reason


def test_gbk_file_is_refused_with_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "hall.toml"
    path.write_bytes('[hall]\nname = "万州"\n'.encode("gbk"))
    with pytest.raises(ConfigError, match="UTF-8"):
        load_hall(path)


# --- the demo PIN rule -------------------------------------------------------------


def test_demo_pin_is_refused_for_a_real_account() -> None:
    data = minimal_hall_dict()
    data["staff"][0]["demo"] = False
    with pytest.raises(ConfigError) as caught:
        parse_hall(data)
    assert caught.value.key == "staff[0].pin_hash"
    assert "demo PIN 1234" in caught.value.reason and "hallctl hash-pin" in caught.value.reason


def test_demo_pin_is_accepted_for_a_demo_account() -> None:
    hall = parse_hall(minimal_hall_dict())
    assert hall.staff["zhangli"].demo is True
    assert verify_pin(DEMO_PIN, hall.staff["zhangli"].pin_hash)


def test_a_real_pin_needs_no_demo_flag() -> None:
    assert parse_hall(minimal_hall_dict()).staff["wangqiang"].demo is False


# --- pins ----------------------------------------------------------------------------


def test_pin_round_trip_with_default_iterations() -> None:
    pin_hash = hash_pin("2468")
    assert pin_hash.startswith("pbkdf2_sha256$60000$")
    assert is_valid_pin_hash(pin_hash)
    assert verify_pin("2468", pin_hash)
    assert not verify_pin("2469", pin_hash)


def test_same_pin_hashes_differently_each_time() -> None:
    assert hash_pin("1234", iterations=1000) != hash_pin("1234", iterations=1000)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "1234",
        "md5$1000$00$00",
        DEMO_HASH.replace("pbkdf2_sha256", "pbkdf2_sha1"),
        DEMO_HASH[:-2],
        DEMO_HASH.replace("$1000$", "$abc$"),
        DEMO_HASH.replace("$1000$", "$10$"),
        DEMO_HASH + "$extra",
        DEMO_HASH[:-1] + "g",
    ],
)
def test_malformed_hash_is_false_not_an_error(bad: str) -> None:
    assert not is_valid_pin_hash(bad)
    assert verify_pin(DEMO_PIN, bad) is False


def test_non_string_hash_is_false() -> None:
    assert verify_pin(DEMO_PIN, None) is False  # type: ignore[arg-type]
    assert not is_valid_pin_hash(1234)


def test_voice_settings() -> None:
    data = minimal_hall_dict()
    data["voice"] = {"enabled": False, "device": "plughw:0,0", "repeats": 2}
    voice = parse_config(data).voice
    assert (voice.enabled, voice.device, voice.repeats) == (False, "plughw:0,0", 2)
    data["voice"] = {"repeats": 9}
    with pytest.raises(ConfigError) as e:
        parse_hall(data)
    assert e.value.key == "voice.repeats"


def test_export_grade_codes_default_to_the_national_table_and_name_only_known_tables() -> None:
    data = minimal_hall_dict()
    assert parse_hall(data).export_grade_codes == "national"
    data["export"] = {"grade_codes": "reversed"}
    assert parse_hall(data).export_grade_codes == "reversed"
    for wrong in ("gbt39046", "provincial", 5):
        data["export"] = {"grade_codes": wrong}
        with pytest.raises(ConfigError) as e:
            parse_hall(data)
        assert e.value.key == "export.grade_codes"


def test_export_channel_codes() -> None:
    data = minimal_hall_dict()
    data["export"] = {"channel_codes": {"tablet": "3"}}
    assert dict(parse_hall(data).export_channel_codes) == {"pad": "1", "tablet": "3", "system_default": "9"}
    data["export"] = {"channel_codes": {"kiosk": "4"}}
    with pytest.raises(ConfigError) as e:
        parse_hall(data)
    assert e.value.key == "export.channel_codes.kiosk"
    data["export"] = {"channel_codes": {"pad": 1}}
    with pytest.raises(ConfigError) as e:
        parse_hall(data)
    assert e.value.key == "export.channel_codes.pad"


@pytest.mark.parametrize("key, value", [
    ("staff_expected_minutes", -1), ("staff_expected_minutes", 121), ("staff_expected_minutes", "15"),
    ("idle_alert_seconds", 5), ("idle_alert_seconds", 3601), ("idle_alert_seconds", 60.5),
])
def test_floor_alert_settings_are_checked_and_named(key, value) -> None:
    data = minimal_hall_dict()
    data["rules"] = {key: value}
    with pytest.raises(ConfigError) as e:
        parse_hall(data)
    assert e.value.key == f"rules.{key}"


def test_floor_alert_settings_default_to_the_rules() -> None:
    rules = parse_hall(minimal_hall_dict()).rules
    assert (rules.staff_expected_minutes, rules.idle_alert_seconds) == (15, 60)
    data = minimal_hall_dict()
    data["rules"] = {"staff_expected_minutes": 0, "idle_alert_seconds": 300}
    rules = parse_hall(data).rules
    assert (rules.staff_expected_minutes, rules.idle_alert_seconds) == (0, 300)
