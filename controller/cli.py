"""hallctl: run a hall, check its config, see its status, hash a PIN; the MQTT broker's ACL and
passwords; rotate the key that seals personal data, purge personal data past its retention."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import getpass
import importlib.metadata
import json
import logging
import socket
import sqlite3
import sys
import urllib.error
import urllib.request
from pathlib import Path

from controller import pins
from controller.clock import ShiftedClock, SystemClock
from controller.config import ConfigError, load_hall, summary
from controller.core.hall import Hall
from controller.calling_devices import attach_calling, controller_mqtt
from controller.cases import CaseDesk
from controller.core.callbacks import CaseRules
from controller.workdays_data import hall_calendar
from controller.core.commands import ReportDevice
from controller.devices import DeviceAddress, attach_devices
from controller.device_check import DeviceCheck
from controller.hallcontroller import HallController
from controller.http_limits import MAX_CONNECTIONS, REQUEST_SECONDS
from controller.data_lock import hold_data_dir
from controller.mqtt_security import (
    amqtt_acl, check_at_start, mosquitto_acl, set_password, without_account,
)
from controller.personal_data import purge, rotate_key
from controller.privacy import IdentitySealer, load_secret
from controller.store.hallstore import HallStore
from controller.store.sessions import SessionStore

DB_NAME = "hall.sqlite3"
SHUTDOWN_GRACE_SECONDS = 2


def open_hall(hall: Hall, data_dir: Path, clock,
              durable: bool = True) -> tuple[HallController, SessionStore]:
    """The hall's controller and login sessions on the database in `data_dir`
    (`durable=False` only for a simulated day's throw-away database)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    store = HallStore(data_dir / DB_NAME, durable)
    ctrl = HallController(hall, store, clock, IdentitySealer(load_secret(data_dir)))
    # One connection, one lock: a login never lands inside another command's transaction.
    return ctrl, SessionStore(store.db, ctrl.lock)


def _last_recorded(data_dir: Path) -> dt.datetime | None:
    """When the hall's database last recorded a command, if it has one."""
    path = data_dir / DB_NAME
    if not path.exists():
        return None
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        try:
            row = db.execute("SELECT at FROM commands ORDER BY id DESC LIMIT 1").fetchone()
        except sqlite3.Error:
            return None
    return dt.datetime.fromisoformat(row[0]) if row else None


def _clock(hall: Hall, start: str | None, data_dir: Path | None = None):
    if not start:
        return SystemClock(hall.timezone)
    real = SystemClock(hall.timezone)()
    if len(start) == 5:  # HH:MM on the next day the hall opens (today, if it does)
        day = real.date()
        if not hall.opening_on(day).open:
            # by the calendar: past a holiday to the next working day, a 调休 Saturday included
            following = hall.next_open_day(day)
            day = following.day if following else day
        when = dt.datetime.combine(day, dt.time.fromisoformat(start), real.tzinfo)
    else:
        when = dt.datetime.fromisoformat(start)
    # A restarted demo goes on from where its hall stopped: its clock never runs backwards.
    last = _last_recorded(data_dir) if data_dir is not None else None
    if last is not None and when < last <= when + dt.timedelta(days=1):
        when = last
    return ShiftedClock(hall.timezone, when)


def _check_free(host: str, port: int, what: str, key: str) -> None:
    """Fail before anything starts if `host:port` is taken, naming the setting to change."""
    with socket.socket() as s:
        # as the servers do: a port left in TIME_WAIT by a crash is free, a listener is not
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise RuntimeError(f"{what} cannot listen on {host}:{port} ({e.strerror}); "
                               f"change {key} or stop what is using it") from None


def cmd_run(args: argparse.Namespace) -> int:
    import uvicorn

    from controller.broker import start_embedded_broker
    from controller.http_limits import BACKLOG, KEEP_ALIVE_SECONDS, bounded_protocol, connection_cap
    from controller.web.app import create_app

    hall = load_hall(args.config)
    try:
        check_at_start(hall)
    except ConfigError as e:
        raise ConfigError(e.key, e.reason, args.config) from None
    _check_free(args.host, args.port, "the web API", "--port")
    cap = connection_cap(args.max_connections, len(hall.devices))
    logging.getLogger("hallctl").info("web API: at most %d connections, requests within %.0f s",
                                      cap, args.request_timeout)
    if hall.mqtt_host is None:
        host, _, port = hall.mqtt_embedded_listen.rpartition(":")
        _check_free(host, int(port), "the embedded MQTT broker", "[mqtt] embedded_listen")
    data_dir = Path(args.data_dir)
    held = hold_data_dir(data_dir, "run the controller")  # noqa: F841 (held while it runs)
    ctrl, sessions = open_hall(hall, data_dir, _clock(hall, args.clock_start, data_dir))
    background = []
    if hall.mqtt_host is None:
        acl = amqtt_acl(hall) if hall.mqtt_password_file else None
        background.append(lambda: start_embedded_broker(hall.mqtt_embedded_listen,
                                                        hall.mqtt_password_file, acl))
    simulations = _simulations(hall, data_dir) if args.simulate else []
    substitutes = {device: DeviceAddress(*where) for s in simulations
                   for device, where in s.substitutes.items()}
    public = args.public_url or f"http://{args.host}:{args.port}"
    floor = attach_devices(ctrl, f"{public}/api/v1/tickets", substitutes)
    mqtt = controller_mqtt(hall, lambda h: ctrl.execute(
        ReportDevice(h.device, h.state.value, h.detail), "system")).start()
    calling = attach_calling(ctrl, floor, data_dir, substitutes, mqtt).start()
    _note_missing_calendar(ctrl)
    # deadlines count the working days the hall opens on: one calendar (load_hall reads it)
    desk = CaseDesk(ctrl, hall.calendar.workdays or hall_calendar(None),
                    CaseRules.from_rules(hall.rules))
    desk.start()
    app = create_app(ctrl, sessions, background, floor.kiosks, desk,
                     before_stop=[desk.stop, calling.close, floor.close, mqtt.stop],
                     device_check=DeviceCheck(ctrl, floor, calling))
    for s in simulations:
        if s.router is not None:
            app.include_router(s.router)
    print(f"{hall.name}: http://{args.host}:{args.port}/docs  (data in {args.data_dir})",
          flush=True)
    try:
        # Open event streams (every hall display and dashboard holds one) would keep a
        # graceful shutdown waiting for ever; they reconnect to the next controller anyway.
        # Slow clients (controller/http_limits.py): a request must arrive within
        # --request-timeout, at most `cap` connections are kept (the longest-waiting one gives
        # way), and the backlog is what the cap leaves spare. uvicorn's limit_concurrency is not
        # used: it answers 503 to everyone once a flood holds the connections.
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level,
                    access_log=args.log_level == "debug",
                    timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
                    http=bounded_protocol(args.request_timeout, cap), backlog=BACKLOG,
                    timeout_keep_alive=KEEP_ALIVE_SECONDS)
    finally:
        for s in simulations:
            s.close()
    return 0


def _calendar_warning(missing: list[int]) -> str:
    years = ", ".join(map(str, missing))
    return (f"the working-day calendar has no holidays for {years}: the hall opens Monday to "
            f"Friday by its weekday hours then; add [years.{missing[0]}] to holidays.toml "
            "beside the hall file (the State Council's notice of that year)")


def _note_missing_calendar(ctrl: HallController) -> list[int]:
    """Alert at start (the log and the audit log) when the calendar lacks a year soon due."""
    missing = ctrl.hall.calendar.missing_years(ctrl.clock().date())
    if missing:
        logging.getLogger("hallctl").warning("%s", _calendar_warning(missing))
        ctrl.note("system", "calendar_year_missing", {"years": missing, "for": "opening_days"})
    return missing


def _simulations(hall: Hall, data_dir: Path) -> list:
    """Simulated devices, found through the `hallctl.simulate` entry point (the `sim` package
    registers one), so production code never imports the simulator itself."""
    found = importlib.metadata.entry_points(group="hallctl.simulate")
    if not found:
        raise RuntimeError("--simulate: no simulator is installed (pip install -e . registers sim/)")
    return [ep.load()(hall, data_dir / "sim") for ep in found]


def cmd_sim(args: argparse.Namespace) -> int:
    """`hallctl sim run|plan`: the hall-day simulator, found through the `hallctl.sim` entry
    points (the `sim` package registers them), as `--simulate` finds its devices."""
    found = {ep.name: ep for ep in importlib.metadata.entry_points(group="hallctl.sim")}
    if args.sim_command not in found:
        raise RuntimeError("sim: no simulator is installed (pip install -e . registers sim/)")
    return found[args.sim_command].load()(args)


def cmd_check_config(args: argparse.Namespace) -> int:
    hall = load_hall(args.path)
    print(f"{args.path}: OK")
    print(summary(hall))
    missing = hall.calendar.missing_years(SystemClock(hall.timezone)().date())
    if missing:
        print(f"warning: {_calendar_warning(missing)}", file=sys.stderr)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    try:
        with urllib.request.urlopen(f"{args.url.rstrip('/')}/api/v1/hall", timeout=5) as r:
            hall = json.load(r)
    except (urllib.error.URLError, OSError) as e:
        print(f"hallctl: no controller answers at {args.url}: {e}", file=sys.stderr)
        return 1
    print(f"{hall['hall']['name']}  {hall['now']}")
    for q in hall["queues"]:
        print(f"  {q['service']} {q['name']}: {q['waiting']} 人等候, 约 {q['eta']['p50']:.0f} 分钟")
    for w in hall["windows"]:
        staff = f"{w['staff']['name']}({w['staff']['post']}岗)" if w["staff"] else "-"
        cur = w["current"]["number"] if w["current"] else "-"
        extra = f"  暂停: {w['pause']['reason']}" if w["pause"] else ""
        print(f"  {w['number']:>3} {w['name']}: {w['state']}  {staff}  当前 {cur}{extra}")
    return 0


def cmd_hash_pin(args: argparse.Namespace) -> int:
    pin = args.pin if args.pin is not None else getpass.getpass("PIN: ")
    if not pin.isdigit() or not 4 <= len(pin) <= 12:
        print("hallctl: a PIN is 4 to 12 digits", file=sys.stderr)
        return 2
    print(pins.hash_pin(pin))
    return 0


def _operator() -> str:
    """Who ran an offline command, for its audit row."""
    return f"hallctl:{getpass.getuser()}"


def cmd_mqtt_acl(args: argparse.Namespace) -> int:
    hall = load_hall(args.config)
    try:
        print(mosquitto_acl(hall, args.config), end="")
    except ConfigError as e:
        raise ConfigError(e.key, e.reason, args.config) from None
    missing = without_account(hall)
    if missing:
        print(f"hallctl: no options.username, so no access: {', '.join(missing)}", file=sys.stderr)
    return 0


def cmd_mqtt_passwd(args: argparse.Namespace) -> int:
    password = args.password
    if password is None:
        password = getpass.getpass(f"password for {args.username}: ")
        if getpass.getpass("again: ") != password:
            print("hallctl: the passwords differ", file=sys.stderr)
            return 2
    if len(password) < 8:
        print("hallctl: a broker password has at least 8 characters", file=sys.stderr)
        return 2
    set_password(Path(args.file), args.username, password)
    print(f"{args.file}: account {args.username} set")
    return 0


def cmd_rotate_key(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir)
    held = hold_data_dir(data_dir, "rotate the key")  # noqa: F841
    done = rotate_key(data_dir, DB_NAME, dt.datetime.now().astimezone(), _operator())
    if done.finished_interrupted:
        print(f"finished an interrupted rotation: the new key is {data_dir / 'secret.key'}")
    else:
        print(f"re-sealed {done.sealed} fields and {done.keys} lookup keys with a new key "
              f"({data_dir / 'secret.key'})")
    print(f"the old key is {done.old_key}: keep it with the backups made before now, then "
          "delete it (backups older than the rotation need it)")
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    hall = load_hall(args.config)
    data_dir = Path(args.data_dir)
    if not (data_dir / DB_NAME).exists():
        raise RuntimeError(f"no hall database in {data_dir}")
    held = hold_data_dir(data_dir, "purge personal data")  # noqa: F841
    store = HallStore(data_dir / DB_NAME)
    try:
        days = hall.rules.personal_data_days
        done = purge(store, SystemClock(hall.timezone)(), days, _operator())
    finally:
        store.close()
    print(f"personal data older than {days} days removed from {done.tickets} tickets, "
          f"{done.appointments} appointments and {done.cases} closed cases")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hallctl", description="Hall controller for 政务服务中心.")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the controller for a hall")
    run.add_argument("--config", required=True, help="hall description (TOML)")
    run.add_argument("--data-dir", required=True, help="where the hall database lives")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8000)
    run.add_argument("--simulate", action="store_true", help="attach simulated devices")
    run.add_argument("--public-url", help="the address printed in ticket QR codes "
                                          "(default http://HOST:PORT)")
    run.add_argument("--clock-start", metavar="HH:MM|ISO",
                     help="run the hall clock from this time (demos outside opening hours)")
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    run.add_argument("--request-timeout", type=float, default=REQUEST_SECONDS, metavar="SECONDS",
                     help="close a connection whose request has not fully arrived by then "
                          f"(default {REQUEST_SECONDS:.0f})")
    run.add_argument("--max-connections", type=int, default=MAX_CONNECTIONS, metavar="N",
                     help=f"web connections kept at most (default {MAX_CONNECTIONS}, less if the "
                          "open-file limit is lower)")
    run.set_defaults(func=cmd_run)

    check = sub.add_parser("check-config", help="validate a hall description")
    check.add_argument("path")
    check.set_defaults(func=cmd_check_config)

    status = sub.add_parser("status", help="show a running controller's windows and queues")
    status.add_argument("--url", default="http://127.0.0.1:8000")
    status.set_defaults(func=cmd_status)

    hp = sub.add_parser("hash-pin", help="hash a staff PIN for the config file")
    hp.add_argument("--pin", help="the PIN (prompted for when omitted)")
    hp.set_defaults(func=cmd_hash_pin)

    acl = sub.add_parser("mqtt-acl", help="print the Mosquitto acl_file (one account per MQTT "
                                          "device) and the password_file recipe")
    acl.add_argument("--config", required=True, help="hall description (TOML)")
    acl.set_defaults(func=cmd_mqtt_acl)

    pw = sub.add_parser("mqtt-passwd", help="add or change an account in the embedded broker's "
                                            "password file ([mqtt] password_file)")
    pw.add_argument("file")
    pw.add_argument("username")
    pw.add_argument("--password", help="the password (prompted for when omitted)")
    pw.set_defaults(func=cmd_mqtt_passwd)

    rk = sub.add_parser("rotate-key", help="re-seal all personal data with a new key "
                                           "(controller stopped)")
    rk.add_argument("--data-dir", required=True)
    rk.set_defaults(func=cmd_rotate_key)

    pg = sub.add_parser("purge", help="remove personal data older than [rules] personal_data_days "
                                      "(controller stopped; a running one purges at each day change)")
    pg.add_argument("--data-dir", required=True)
    pg.add_argument("--config", required=True, help="hall description (TOML)")
    pg.set_defaults(func=cmd_purge)

    sim = sub.add_parser("sim", help="simulate a hall day from a scenario (sim/scenarios/*.toml)")
    sim_sub = sim.add_subparsers(dest="sim_command", required=True)
    sr = sim_sub.add_parser("run", help="simulate one day and report waits, estimates and checks")
    sr.add_argument("scenario", help="a scenario file, or the name of one in sim/scenarios")
    sr.add_argument("--seed", type=int, help="the day's random seed (default: the scenario's)")
    sr.add_argument("--speed", default="max",
                    help="max (as fast as it goes, the default) or N: N times real time")
    sr.add_argument("--html", help="where to write the report page (default sim-NAME-seedN.html)")
    sr.add_argument("--json", help="also write the report's figures as JSON here")
    sr.add_argument("--quiet", action="store_true", help="no progress bar")
    sr.set_defaults(func=cmd_sim)
    sp = sim_sub.add_parser("plan", help="the fewest open windows per hour for a P90 wait target")
    sp.add_argument("scenario", help="a scenario file, or the name of one in sim/scenarios")
    sp.add_argument("--p90-wait", type=float, required=True, metavar="MINUTES",
                    help="the longest P90 wait allowed in any hour")
    sp.add_argument("--seed", type=int, action="append",
                    help="a seed to run (repeat for several days pooled; default: the scenario's)")
    sp.add_argument("--quiet", action="store_true", help="no progress lines")
    sp.set_defaults(func=cmd_sim)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("amqtt", "transitions"):  # the embedded broker narrates every state change
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return args.func(args)
    except ConfigError as e:
        print(f"hallctl: bad config: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        print(f"hallctl: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
