"""hallctl: run a hall, check its config, see its status, hash a PIN."""

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
from controller.privacy import IdentitySealer, load_secret
from controller.store.hallstore import HallStore
from controller.store.sessions import SessionStore

DB_NAME = "hall.sqlite3"
SHUTDOWN_GRACE_SECONDS = 2


def open_hall(hall: Hall, data_dir: Path, clock) -> tuple[HallController, SessionStore]:
    """The hall's controller and login sessions on the database in `data_dir`."""
    data_dir.mkdir(parents=True, exist_ok=True)
    store = HallStore(data_dir / DB_NAME)
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
        for _ in range(7):
            if hall.hours_on(day).sessions:
                break
            day += dt.timedelta(days=1)
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
    from controller.web.app import create_app

    hall = load_hall(args.config)
    _check_free(args.host, args.port, "the web API", "--port")
    if hall.mqtt_host is None:
        host, _, port = hall.mqtt_embedded_listen.rpartition(":")
        _check_free(host, int(port), "the embedded MQTT broker", "[mqtt] embedded_listen")
    data_dir = Path(args.data_dir)
    ctrl, sessions = open_hall(hall, data_dir, _clock(hall, args.clock_start, data_dir))
    background = []
    if hall.mqtt_host is None:
        background.append(lambda: start_embedded_broker(hall.mqtt_embedded_listen))
    simulations = _simulations(hall, data_dir) if args.simulate else []
    substitutes = {device: DeviceAddress(*where) for s in simulations
                   for device, where in s.substitutes.items()}
    public = args.public_url or f"http://{args.host}:{args.port}"
    floor = attach_devices(ctrl, f"{public}/api/v1/tickets", substitutes)
    mqtt = controller_mqtt(hall, lambda h: ctrl.execute(
        ReportDevice(h.device, h.state.value, h.detail), "system")).start()
    calling = attach_calling(ctrl, floor, data_dir, substitutes, mqtt).start()
    holidays = Path(args.config).parent / "holidays.toml"
    desk = CaseDesk(ctrl, hall_calendar(holidays if holidays.exists() else None),
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
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level,
                    access_log=args.log_level == "debug",
                    timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS)
    finally:
        for s in simulations:
            s.close()
    return 0


def _simulations(hall: Hall, data_dir: Path) -> list:
    """Simulated devices, found through the `hallctl.simulate` entry point (the `sim` package
    registers one), so production code never imports the simulator itself."""
    found = importlib.metadata.entry_points(group="hallctl.simulate")
    if not found:
        raise RuntimeError("--simulate: no simulator is installed (pip install -e . registers sim/)")
    return [ep.load()(hall, data_dir / "sim") for ep in found]


def cmd_check_config(args: argparse.Namespace) -> int:
    hall = load_hall(args.path)
    print(f"{args.path}: OK")
    print(summary(hall))
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
