"""hallctl: run a hall, check its config, see its status, hash a PIN; the MQTT broker's ACL and
passwords; rotate the key that seals personal data, purge personal data past its retention; install the hall
as a service, name its devices and look it over (controller/installation)."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import importlib.metadata
import json
import logging
import os
import signal
import socket
import sqlite3
import sys
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType

from controller import cli_backup
from controller.security import pins
from controller.runtime.clock import SystemClock
from controller.config.hall import ConfigError, load_config, load_hall, read_toml, summary
from controller.core.hall import Hall
from controller.config.settings import FederationSettings
from controller.assembly import DB_NAME, HALL_BROKER, assemble, hall_clock, open_hall
from controller.floor.devices import DeviceAddress, kiosk_kinds, kiosk_of
from controller.floor.device_names import unstable_warnings
from controller.installation import commands as installation_commands
from controller.runtime.hallcontroller import HallController
from controller.security.http_limits import MAX_CONNECTIONS, REQUEST_SECONDS, connection_cap
from controller.runtime import logs
from controller.runtime.data_lock import hold_data_dir
from controller.runtime.service_notify import ServiceNotifier
from controller.mqtt.accounts import check_at_start, mosquitto_acl, set_password, without_account
from controller.security.personal_data import purge, rotate_key
from controller.store.copies import refuse_newer
from controller.store.faults import StorageUnavailable, describe, is_storage_error
from controller.store.hallstore import HallStore
from controller.store.kiosk_credentials import KIOSK_ID, KioskCredentials
from controller.web.metrics import METRICS_TOKEN_ENV
from controller.web.pages import PAGES
from vocabulary import district

SHUTDOWN_GRACE_SECONDS = 2


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


DEMO_WARNING = ("WARNING: {n} demo accounts (demo = true) log in with the PIN {pin}, known to "
                "everyone, and this controller runs real devices (no --simulate). For a demo, add "
                "--simulate; for a live hall, give every account its own PIN (hallctl hash-pin) "
                "and remove demo = true. 演示账号（共 {n} 个）使用公开的 PIN {pin}，请勿用于实际大厅。")


def _warn_demo_accounts(hall: Hall, simulate: bool) -> None:
    """Demo accounts are for a demo: run on real devices (no --simulate), say so loudly."""
    n = sum(1 for s in hall.staff.values() if s.demo)
    if n and not simulate:
        text = DEMO_WARNING.format(n=n, pin=pins.DEMO_PIN)
        print(f"hallctl: {text}", file=sys.stderr, flush=True)


def _open_for_run(hall: Hall, data_dir: Path, clock_start: str | None):
    """Take the data directory and open the hall on it, or refuse with one line naming the path
    and the fix: a directory or key the controller cannot read, a database it cannot write (a
    read-only database opens fine and would fail every ticket after), a full disk."""
    refuse_newer(data_dir / DB_NAME)  # one line naming the file, before anything opens it
    try:
        held = hold_data_dir(data_dir, "run the controller")
        ctrl, sessions = open_hall(hall, data_dir, hall_clock(hall, clock_start, data_dir))
        fault = ctrl.store.probe(ctrl.clock())
    except (OSError, sqlite3.Error, StorageUnavailable) as e:
        if not is_storage_error(e):
            raise
        where = getattr(e, "filename", None) or data_dir / DB_NAME
        raise RuntimeError(describe(e, where).line()) from None
    if fault is not None:
        raise RuntimeError(fault.line())
    return held, ctrl, sessions


def cmd_run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except KeyboardInterrupt:  # Ctrl+C before the web API ran, or a second one while it stops
        print("hallctl: stopped", file=sys.stderr)
        return 130


def _district(value: str | None) -> FederationSettings | None:
    """`--district HALL_ID@HOST:PORT`; ConfigError for anything else."""
    if value is None:
        return None
    hall_id, _, where = value.partition("@")
    host, _, port = where.rpartition(":")
    if not district.is_hall_id(hall_id) or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError("--district", f"expected HALL_ID@HOST:PORT such as demo@127.0.0.1:18840, found {value!r} "
                          f"({district.HALL_ID_EXPECTED})")
    return FederationSettings(hall_id, host, int(port))


def _check_federation(federation: FederationSettings | None) -> None:
    """Fail before anything starts when the shipper could not log in or check the broker."""
    if federation is None:
        return
    if federation.password_env and federation.credentials()[1] is None:
        raise ConfigError("federation.password_env", f"the variable {federation.password_env} is not set "
                          "where the controller runs; the shipper could not log in to the district broker")
    if federation.ca_file and not Path(federation.ca_file).is_file():
        raise ConfigError("federation.ca_file", f"{federation.ca_file} is not a file; the shipper could not "
                          "check the district broker's certificate")


def _run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    federation = _district(args.district) or config.federation
    # a district's hall: the centre's last good bundle over the file (its safe point is the start)
    if federation is not None:
        from controller.federation.bundles import configured

        config = configured(args.config, config, Path(args.data_dir), federation)
    hall, mqtt = config.hall, config.mqtt
    try:
        check_at_start(mqtt)
        _check_federation(federation)
    except ConfigError as e:
        raise ConfigError(e.key, e.reason, args.config) from None
    _warn_demo_accounts(hall, args.simulate)
    if args.log_level == "debug":  # and the hall thread logs each command, with its id
        logging.getLogger("controller").setLevel(logging.DEBUG)
    _check_free(args.host, args.port, "the web API", "--port")
    cap = connection_cap(args.max_connections, len(hall.devices))
    logging.getLogger("hallctl").info("web API: at most %d connections, requests within %.0f s",
                                      cap, args.request_timeout)
    if mqtt.embedded:
        host, port = mqtt.address()
        _check_free(host, port, "the embedded MQTT broker", "[mqtt] embedded_listen")
    data_dir = Path(args.data_dir)
    held, ctrl, sessions = _open_for_run(hall, data_dir, args.clock_start)  # noqa: F841
    simulations = _simulations(hall, data_dir, mqtt.address()) if args.simulate else []
    substitutes = {device: DeviceAddress(*where) for s in simulations
                   for device, where in s.substitutes.items()}
    public = args.public_url or f"http://{args.host}:{args.port}"
    if not args.public_url and args.host in ("0.0.0.0", "::", ""):
        logging.getLogger("hallctl").warning(
            "slips' QR codes lead to %s, which no phone can open: give --public-url, the "
            "address phones on the hall's LAN or Wi-Fi reach this controller at", public)
    running = assemble(hall, data_dir, ctrl.clock, status_url=public,
                       substitutes=substitutes, mqtt=HALL_BROKER, broker=mqtt.embedded,
                       mqtt_settings=mqtt, voice=config.voice, display=config.display,
                       layout=config.layout,
                       reminders=config.reminders,
                       routers=[s.router for s in simulations if s.router is not None],
                       opened=(ctrl, sessions), federation=federation,
                       federation_document=read_toml(args.config) if federation else None)
    # the simulated devices stop with the hall's own, while the embedded broker still answers
    # them (a device whose broker has gone waits out a reconnect delay to notice its stop)
    running.stops.extend(s.close for s in simulations)
    running.app.state.metrics_token = os.environ.get(METRICS_TOKEN_ENV) or None  # web/metrics.py
    _note_missing_calendar(ctrl)
    print(banner(hall.name, f"http://{args.host}:{args.port}", args.data_dir,
                 {path: title for s in simulations for path, title in s.pages.items()}), flush=True)
    if args.simulate:
        _provision_demo_kiosks(ctrl, list(running.floor.kiosks), public)
    try:
        _serve(running.app, args, cap, alive=lambda: ctrl.aask(lambda state: None))
    finally:
        for s in simulations:
            s.close()
        ctrl.close()  # what the hall thread still holds is written before the process ends
    return 0


def banner(hall_name: str, base: str, data_dir: str, more_pages: dict[str, str]) -> str:
    """What `hallctl run` prints when it starts: the hall's start page, then every page by name
    (`more_pages`: path -> title, such as a simulator's)."""
    pages = {f"/{name}": page.title for name, page in PAGES.items()}
    pages.update(more_pages)
    pages["/docs"] = "接口文档 (API)"
    listed = "\n".join(f"  {title}  {base}{path}" for path, title in pages.items())
    return f"{hall_name}: {base}/  (data in {data_dir})\n{listed}"


SWITCH_SECONDS = 0.001


def _serve(app, args: argparse.Namespace, cap: int, alive=None) -> None:
    """The web API until Ctrl+C or SIGTERM. Once told to stop, the pages' event streams end at
    once (controller/web/shutdown.py), so the stop takes about a second, not the grace time.
    Under systemd it says READY=1 once listening, then pings the watchdog while `alive()` (a
    question to the hall thread) answers (controller/runtime/service_notify.py)."""
    import uvicorn

    from controller.security.http_limits import BACKLOG, KEEP_ALIVE_SECONDS, bounded_protocol

    service = ServiceNotifier.from_environment()

    class HallServer(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets)
            if self.started and alive is not None:
                service.ready(alive)

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            service.stopping()
            app.state.shutdown.begin()
            super().handle_exit(sig, frame)

    # Slow clients (controller/security/http_limits.py): a request must arrive within
    # --request-timeout, at most `cap` connections are kept (the longest-waiting one gives
    # way), and the backlog is what the cap leaves spare. uvicorn's limit_concurrency is not
    # used: it answers 503 to everyone once a flood holds the connections.
    server = HallServer(uvicorn.Config(
        app, host=args.host, port=args.port, log_level=args.log_level,
        access_log=args.log_level == "debug", timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
        http=bounded_protocol(args.request_timeout, cap), backlog=BACKLOG,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        # X-Forwarded-For names the client only when a proxy of the hall's sent it
        # (uvicorn trusts it from 127.0.0.1 by default: anyone on the box, or a
        # kiosk flood through any local relay, could pick its address)
        proxy_headers=bool(args.trusted_proxy),
        forwarded_allow_ips=",".join(args.trusted_proxy) or None,
        # JSON lines: uvicorn's own records go through the root logger's JSON handler
        log_config=None if args.log_format == "json" else uvicorn.config.LOGGING_CONFIG))
    # uvicorn stops gracefully on SIGINT and SIGTERM, then raises the signal again for the
    # handler it found: both end here as KeyboardInterrupt, and the caller closes the hall
    # (SIGTERM's own handler would end the process before the database is closed)
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    # The web API's loop shares the interpreter with threads that compute (a report, the
    # broker, the calling floor): a request ready to go waits until one of them hands the
    # interpreter over, by default after 5 ms, several times a request. 1 ms keeps a call
    # within its few milliseconds while a report is computed, for a little more switching.
    sys.setswitchinterval(SWITCH_SECONDS)
    stopped = False
    try:
        server.run()
    except KeyboardInterrupt:
        stopped = True
    finally:
        signal.signal(signal.SIGTERM, previous)
    if not server.started and not stopped:
        raise RuntimeError("the web API did not start (the reason is in the log above)")


def kiosk_url(base: str, key: str) -> str:
    """The address that enrols a kiosk page: the key rides in the fragment, which the
    browser never sends, so it reaches no access log; the page swaps it for its cookie."""
    return f"{base.rstrip('/')}/kiosk#key={key}"


def _provision_demo_kiosks(ctrl: HallController, kiosks: list[str], base: str) -> None:
    """A simulated hall works out of the box: each kiosk without a key gets one, and the
    address that enrols a browser as that kiosk is printed (a kiosk page already enrolled
    keeps its cookie across restarts, so a kiosk that has a key keeps it)."""
    credentials = KioskCredentials(ctrl.store)
    live = credentials.live()
    for kiosk_id in kiosks:
        if kiosk_id in live:
            print(f"取号机 {kiosk_id}: already has a key (a new one: hallctl kiosk-credential "
                  f"--data-dir DIR {kiosk_id})", flush=True)
            continue
        key = credentials.issue(kiosk_id, "hallctl:demo", ctrl.clock())
        ctrl.note("hallctl:demo", "kiosk_credential_issued", {"kiosk": kiosk_id})
        print(f"取号机 {kiosk_id}: open {kiosk_url(base, key.key)}  (enrols this browser as the kiosk)",
              flush=True)


def cmd_kiosk_credential(args: argparse.Namespace) -> int:
    """A kiosk's key, set up by the admin: printed once, stored hashed; or revoked. Works
    beside a running controller (its next check reads the new key)."""
    if not KIOSK_ID.match(args.kiosk):
        print("hallctl: a kiosk id is 1 to 32 letters, digits, '-' or '_'", file=sys.stderr)
        return 2
    data_dir = Path(args.data_dir)
    if not (data_dir / DB_NAME).exists():
        raise RuntimeError(f"no hall database in {data_dir} (start the controller once first)")
    if args.config:
        known = {kiosk_of(d) for d in load_hall(args.config).devices if d.kind in kiosk_kinds()}
        if args.kiosk not in known:
            print(f"hallctl: note: {args.kiosk} is no kiosk of the hall's devices "
                  f"({', '.join(sorted(known)) or 'none'}); its key takes tickets through "
                  "POST /api/v1/tickets only (a kiosk page without a printer)", file=sys.stderr)
    store = HallStore(data_dir / DB_NAME)
    try:
        credentials = KioskCredentials(store)
        now = dt.datetime.now().astimezone()
        if args.revoke:
            done = credentials.revoke(args.kiosk, _operator(), now)
            print(f"取号机 {args.kiosk}: key revoked" if done
                  else f"取号机 {args.kiosk}: had no live key")
            return 0 if done else 1
        key = credentials.issue(args.kiosk, _operator(), now)
    finally:
        store.close()
    print(key.key)
    print(f"取号机 {args.kiosk}: a new key (any older one has ended); shown only now. On the kiosk "
          f"machine open {kiosk_url(args.url, key.key)} once, or type the key where the kiosk "
          "page asks for it.", file=sys.stderr)
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


def _simulations(hall: Hall, data_dir: Path, broker: tuple[str, int]) -> list:
    """Simulated devices, found through the `hallctl.simulate` entry point (the `sim` package
    registers one), so production code never imports the simulator itself; the MQTT ones
    connect to `broker` (host, port)."""
    found = importlib.metadata.entry_points(group="hallctl.simulate")
    if not found:
        raise RuntimeError("--simulate: no simulator is installed (pip install -e . registers sim/)")
    return [ep.load()(hall, data_dir / "sim", broker=broker) for ep in found]


def cmd_sim(args: argparse.Namespace) -> int:
    """`hallctl sim run|plan`: the hall-day simulator, found through the `hallctl.sim` entry
    points (the `sim` package registers them), as `--simulate` finds its devices."""
    found = {ep.name: ep for ep in importlib.metadata.entry_points(group="hallctl.sim")}
    if args.sim_command not in found:
        raise RuntimeError("sim: no simulator is installed (pip install -e . registers sim/)")
    return found[args.sim_command].load()(args)


def cmd_check_config(args: argparse.Namespace) -> int:
    config = load_config(args.path)
    hall = config.hall
    print(f"{args.path}: OK")
    print(summary(config))
    missing = hall.calendar.missing_years(SystemClock(hall.timezone)().date())
    if missing:
        print(f"warning: {_calendar_warning(missing)}", file=sys.stderr)
    for warning in unstable_warnings(config):
        print(f"warning: {warning}", file=sys.stderr)
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
    why = pins.weakness(pin)
    if why is not None:
        print(f"hallctl: {why}: a PIN is {pins.MIN_DIGITS} to {pins.MAX_DIGITS} digits, not one "
              "digit repeated, a run (123456), a repeated pattern (121212) or a well-known one",
              file=sys.stderr)
        return 2
    print(pins.hash_pin(pin))
    return 0


def _operator() -> str:
    """Who ran an offline command, for its audit row."""
    return f"hallctl:{getpass.getuser()}"


def cmd_mqtt_acl(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    hall = config.hall
    try:
        print(mosquitto_acl(hall, config.mqtt, args.config), end="")
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


def cmd_verify_log(args: argparse.Namespace) -> int:
    """The event log checked against its hash chain (vocabulary.chain), read-only: a running
    controller may go on meanwhile."""
    from controller.store.outbox import Outbox

    db = Path(args.data_dir) / DB_NAME
    if not db.exists():
        raise RuntimeError(f"no hall database in {args.data_dir}")
    outbox = Outbox(db)
    try:
        verdict, _ = outbox.verify(0)
    finally:
        outbox.close()
    if verdict.first_break is None:
        print(f"event log: {verdict.checked} events up to event {verdict.through} agree with their "
              f"hash chain (head {verdict.computed[:16]}…)")
        return 0
    what = {"altered": "its data is not what was written with its hash",
            "gap": "events before it are missing",
            "unlinked": "it has no link in the chain"}.get(verdict.problem or "", verdict.problem)
    print(f"event log BROKEN at event {verdict.first_break} ({verdict.problem}): {what}; "
          f"{verdict.checked} events checked up to event {verdict.through}")
    return 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hallctl", description="Hall controller for 政务服务中心.")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the controller for a hall")
    run.add_argument("--config", required=True, help="hall description (TOML)")
    run.add_argument("--data-dir", required=True, help="where the hall database lives")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8000)
    run.add_argument("--simulate", action="store_true", help="attach simulated devices")
    run.add_argument("--public-url", help="the hall's address as phones on its LAN or "
                          "Wi-Fi reach it: a slip's QR code leads to its ticket's phone page there "
                          "(default http://HOST:PORT)")
    run.add_argument("--clock-start", metavar="HH:MM|ISO",
                     help="run the hall clock from this time (demos outside opening hours)")
    run.add_argument("--trusted-proxy", action="append", default=[], metavar="IP",
                     help="a reverse proxy whose X-Forwarded-For header names the client "
                          "(repeat for several; by default the header is ignored)")
    run.add_argument("--district", metavar="HALL_ID@HOST:PORT",
                     help="ship the event log to this district broker (anonymous, no TLS) in place of "
                          "the hall file's [federation]; `make district` runs one on this machine")
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    run.add_argument("--log-format", default="text", choices=logs.FORMATS,
                     help="json: one JSON object per line, with the command id where there is "
                          "one (for a log collector)")
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

    kc = sub.add_parser("kiosk-credential", help="set up a kiosk's key (printed once, stored "
                                                 "hashed), or --revoke it")
    kc.add_argument("kiosk", help="the kiosk's id (its devices' options.kiosk, e.g. entrance)")
    kc.add_argument("--data-dir", required=True)
    kc.add_argument("--config", help="hall description (TOML), to check the kiosk id against")
    kc.add_argument("--url", default="http://127.0.0.1:8000",
                    help="the controller's address, for the enrolling link")
    kc.add_argument("--revoke", action="store_true", help="end the kiosk's key at once")
    kc.set_defaults(func=cmd_kiosk_credential)

    rk = sub.add_parser("rotate-key", help="re-seal all personal data with a new key "
                                           "(controller stopped)")
    rk.add_argument("--data-dir", required=True)
    rk.set_defaults(func=cmd_rotate_key)

    pg = sub.add_parser("purge", help="remove personal data older than [rules] personal_data_days "
                                      "(controller stopped; a running one purges at each day change)")
    pg.add_argument("--data-dir", required=True)
    pg.add_argument("--config", required=True, help="hall description (TOML)")
    pg.set_defaults(func=cmd_purge)

    vl = sub.add_parser("verify-log", help="check the event log against its hash chain "
                                           "(read-only; exit 1 and the first bad event when it breaks)")
    vl.add_argument("--data-dir", required=True)
    vl.set_defaults(func=cmd_verify_log)

    installation_commands.register(sub)  # install, uninstall, devices, doctor
    cli_backup.register(sub)

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
    logs.configure(getattr(args, "log_format", "text"))
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
