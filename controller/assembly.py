"""Building a running hall from its parts, in one place.

`hallctl run`, the API tests' server, the simulator, the benchmarks and the fuzzers all
build their hall here, and differ only in the options they pass:

    open_hall(hall, data_dir, clock)          the controller and its login sessions
    attach_floor(ctrl, data_dir, ...)         the kiosks' and the calling path's drivers
    open_case_desk(ctrl, workdays)            the 12345-style case desk, started
    assemble(hall, data_dir, clock, ...)      all of the above and the web app: `AssembledHall`
    bare_api(ctrl, sessions)                  the web app alone, for the core benchmark

What a caller varies: the clock (a test's `ManualClock`, a demo's shifted one), the data
directory and its durability (a simulated day's throw-away database), devices a simulator
stands in for (`substitutes`), the controller's MQTT connection (the hall's broker, a test's
own, or none), the embedded broker, and extra routes (a simulator's control panel).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo
from typing import Any

from controller.counters.calling import CallingFloor
from controller.counters.calling_devices import attach_calling, controller_mqtt
from controller.backoffice import day_figures
from controller.backoffice.cases import CaseDesk
from controller.runtime.clock import ShiftedClock, SystemClock
from controller.core.callbacks import CaseRules
from controller.core.commands import ReportDevice
from controller.core.hall import Hall
from controller.core.workdays import WorkCalendar
from controller.backoffice.device_check import DeviceCheck
from controller.floor.devices import DeviceAddress, Floor, attach_devices
from controller.runtime.hallcontroller import HallController
from controller.security.privacy import IdentitySealer, load_secret
from controller.config.settings import (
    DisplaySettings, FederationSettings, FloorLayout, MqttSettings, ReminderSettings, VoiceSettings,
)
from controller.entrance.reminders import ReminderDesk
from controller.store.hallstore import HallStore
from controller.store.reading import last_command_at
from controller.store.sessions import SessionStore
from controller.config.workdays import hall_calendar
from drivers.mqtt import MqttLink
from drivers.transport import DeviceHealth

log = logging.getLogger(__name__)

DB_NAME = "hall.sqlite3"

# `assemble(mqtt=...)`: connect to the broker the hall's [mqtt] names (its own or the embedded one)
HALL_BROKER = "hall"


def open_hall(hall: Hall, data_dir: Path, clock,
              durable: bool = True) -> tuple[HallController, SessionStore]:
    """The hall's controller and login sessions on the database in `data_dir`
    (`durable=False` only for a simulated day's throw-away database)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    store = HallStore(data_dir / DB_NAME, durable)
    ctrl = HallController(hall, store, clock, IdentitySealer(load_secret(data_dir)))
    # 日汇总: a closed day is summarised as it closes, so the reports never wait for one
    ctrl.at_day_change(functools.partial(day_figures.keep_closed_days, tz=ZoneInfo(hall.timezone)))
    # One connection, one lock: a login never lands inside another command's transaction.
    return ctrl, SessionStore(store.db, store.lock)


def hall_mqtt(ctrl: HallController, settings: MqttSettings) -> MqttLink:
    """The controller's own connection to the hall's broker ([mqtt]), started; the link's
    health is the controller's, reported as any device's."""
    def report(health: DeviceHealth) -> None:
        ctrl.execute(ReportDevice(health.device, health.state.value, health.detail), "system")

    return controller_mqtt(ctrl.hall, settings, report).start()


def attach_floor(ctrl: HallController, data_dir: Path, status_url: str | None,
                 substitutes: dict[str, DeviceAddress] | None = None,
                 mqtt: MqttLink | None = None,
                 voice: VoiceSettings | None = None) -> tuple[Floor, CallingFloor]:
    """Start a driver for every device of the hall: the kiosks' (printers, readers,
    scanners; a printed ticket's QR code points at `status_url`) and the calling path's
    (keypads, pads, window bars, the hall display over `mqtt`, the voice). A device in
    `substitutes` is reached where a simulator offers it instead of where the config says.
    With `voice` on, the calls are spoken (WAV files under `data_dir`/voice, and its device)."""
    substitutes = substitutes or {}
    floor = attach_devices(ctrl, status_url, substitutes)
    calling = attach_calling(ctrl, floor, data_dir, substitutes, mqtt, voice).start()
    return floor, calling


def open_reminders(ctrl: HallController, settings: ReminderSettings | None) -> ReminderDesk:
    """The 到号提醒 desk, started when the hall's [reminders] names a gateway (off otherwise):
    its gateway kind from the registry (drivers.sms), the token from the environment."""
    import os

    from drivers.sms import gateway_from

    settings = settings or ReminderSettings()
    gateway = None
    if settings.enabled and settings.url:
        token = os.environ.get(settings.token_env) if settings.token_env else None
        gateway = gateway_from(settings.gateway, url=settings.url,
                               timeout=settings.timeout_seconds, token=token)
    return ReminderDesk(ctrl, settings, gateway).start()


def open_case_desk(ctrl: HallController, workdays: WorkCalendar | None = None) -> CaseDesk:
    """The case desk, started: its deadlines count `workdays` (default: the hall's own
    calendar, else the built-in one without a holidays file)."""
    hall = ctrl.hall
    desk = CaseDesk(ctrl, workdays or hall.calendar.workdays or hall_calendar(None),
                    CaseRules.from_rules(hall.rules))
    desk.start()
    return desk


def embedded_broker(hall: Hall, settings: MqttSettings) -> Callable[[], Any]:
    """The embedded MQTT broker's async start, for the app's background (the hall has no
    [mqtt] host), on a thread and event loop of its own beside the web API's; with a
    password file it checks accounts and the hall's ACL."""
    from controller.mqtt.broker import start_broker_thread
    from controller.mqtt.accounts import amqtt_acl

    acl = amqtt_acl(hall, settings) if settings.password_file else None
    return lambda: start_broker_thread(settings.embedded_listen, settings.password_file, acl)


def bare_api(ctrl: HallController, sessions: SessionStore) -> Any:
    """The web API alone, without devices, case desk or broker (`make bench-core` measures
    it beside the deployed shape that `assemble` builds)."""
    from controller.web.app import create_app

    return create_app(ctrl, sessions)


@dataclass
class AssembledHall:
    """A hall built by `assemble`: its parts, the web app serving them, and how to stop."""

    ctrl: HallController
    sessions: SessionStore
    floor: Floor
    calling: CallingFloor
    desk: CaseDesk
    device_check: DeviceCheck
    app: Any  # FastAPI
    mqtt: MqttLink | None = None
    reminders: ReminderDesk | None = None
    # stopped in this order, at the app's shutdown or by `stop()`: devices and the MQTT
    # client first, so the embedded broker has no client left when it stops
    stops: list[Callable[[], Any]] = field(default_factory=list)

    @property
    def hall(self) -> Hall:
        return self.ctrl.hall

    def stop(self) -> None:
        """Stop the case desk, the drivers and the MQTT client (once; later calls do nothing)."""
        stops, self.stops = self.stops, []
        for fn in stops:
            try:
                fn()
            except Exception:
                log.exception("stopping %s", fn)

    def close(self) -> None:
        """`stop()`, then close the database."""
        self.stop()
        self.ctrl.store.close()


def assemble(hall: Hall, data_dir: Path, clock, *, status_url: str | None,
             substitutes: dict[str, DeviceAddress] | None = None,
             mqtt: MqttLink | str | None = None, broker: bool = False,
             mqtt_settings: MqttSettings | None = None, voice: VoiceSettings | None = None,
             display: DisplaySettings | None = None, layout: FloorLayout | None = None,
             reminders: ReminderSettings | None = None,
             workdays: WorkCalendar | None = None, routers: Iterable[Any] = (),
             stop_with_app: bool = True, durable: bool = True,
             opened: tuple[HallController, SessionStore] | None = None,
             federation: FederationSettings | None = None,
             federation_document: dict[str, Any] | None = None) -> AssembledHall:
    """The hall `hallctl run` serves: controller, store, devices, case desk, web app.

    `status_url`: the hall's address as phones reach it; a printed ticket's QR code leads to
    its phone page there (controller.entrance.kiosk.phone_link).
    `substitutes`: devices a simulator stands in for, by device id.
    `mqtt`: the controller's MQTT connection: `HALL_BROKER` for the one the hall's [mqtt]
    names, a started `MqttLink` of the caller's (stopped with the hall), or None (no MQTT
    devices, no hall board).
    `broker`: run the embedded MQTT broker for the app's life.
    `mqtt_settings`: the hall's [mqtt] (controller.config.settings), for `HALL_BROKER` and `broker`.
    `voice`: the hall's [voice] (controller.config.settings); None: the calls are not spoken.
    `display`: the hall's [display] (its notices; None: the default notices).
    `layout`: the hall's [layout] for the supervisor's floor (None: the windows in order).
    `reminders`: the hall's [reminders] (到号提醒 by text message; None: off).
    `workdays`: the case desk's working-day calendar (default: the hall's).
    `routers`: more routes for the app (a simulator's control panel).
    `stop_with_app`: the app's shutdown stops the devices (`hallctl run`); otherwise the
    caller does, with `stop()` or `close()`.
    `opened`: the controller and sessions already opened with `open_hall` (a caller that
    checks the database first); by default they are opened here.
    `federation`: the hall's [federation]: its event log is shipped to the district centre
    (controller.federation); None: the hall stands alone.
    `federation_document`: the hall file's document the centre's bundles are checked against
    (None: one made of `hall`)."""
    from controller.web.app import create_app

    ctrl, sessions = opened or open_hall(hall, data_dir, clock, durable)
    settings = mqtt_settings or MqttSettings()
    link = hall_mqtt(ctrl, settings) if mqtt == HALL_BROKER else mqtt
    assert link is None or isinstance(link, MqttLink)
    floor, calling = attach_floor(ctrl, data_dir, status_url, substitutes, link, voice)
    desk = open_case_desk(ctrl, workdays)
    device_check = DeviceCheck(ctrl, floor, calling)
    texts = open_reminders(ctrl, reminders)
    stops: list[Callable[[], Any]] = [texts.stop, desk.stop, calling.close, floor.close]
    if link is not None:
        stops.append(link.stop)
    agent = None
    if federation is not None:
        from controller.federation.bundles import start_config_agent
        from controller.federation.shipper import start_shipper

        # the centre's configuration bundles (配置下发): staff disables at once, the rest at start
        agent = start_config_agent(federation, ctrl, sessions, data_dir, federation_document)
        stops.insert(0, agent.stop)
        stops.insert(0, start_shipper(federation, ctrl.store.path, data_dir, ctrl.clock, agent.version).stop)
    assembled = AssembledHall(ctrl, sessions, floor, calling, desk, device_check, None, link,
                              reminders=texts, stops=stops)
    background = [embedded_broker(hall, settings)] if broker else []
    app = create_app(ctrl, sessions, background, floor.kiosks, desk,
                     before_stop=[assembled.stop] if stop_with_app else None,
                     device_check=device_check, display=display, layout=layout,
                     reminders=texts)
    for router in routers:
        app.include_router(router)
    if agent is not None:
        app.state.district = agent.status  # /api/v1/health: the bundle in use
    assembled.app = app
    return assembled


def _last_recorded(data_dir: Path) -> dt.datetime | None:
    """When the hall's database last recorded a command, if it has one."""
    return last_command_at(data_dir / DB_NAME)


def hall_clock(hall: Hall, start: str | None, data_dir: Path | None = None):
    """The hall's clock: the system's, or (`start`, `hallctl run --clock-start`) one shifted to
    start at HH:MM of the next open day or at an ISO time; RuntimeError for a wrong `start`."""
    if not start:
        return SystemClock(hall.timezone)
    real = SystemClock(hall.timezone)()
    try:
        if len(start) == 5:  # HH:MM on the next day the hall opens (today, if it does)
            day = real.date()
            if not hall.opening_on(day).open:
                # by the calendar: past a holiday to the next working day, a 调休 Saturday included
                following = hall.next_open_day(day)
                day = following.day if following else day
            when = dt.datetime.combine(day, dt.time.fromisoformat(start), real.tzinfo)
        else:
            when = dt.datetime.fromisoformat(start)
    except ValueError:
        raise RuntimeError(f"--clock-start {start!r}: give HH:MM or an ISO time such as "
                           "2026-12-07T09:00 (the hall's time zone when none is given)") from None
    if when.tzinfo is None:  # a time without a zone is the hall's local time
        when = when.replace(tzinfo=real.tzinfo)
    # A restarted demo goes on from where its hall stopped: its clock never runs backwards.
    last = _last_recorded(data_dir) if data_dir is not None else None
    if last is not None and when < last <= when + dt.timedelta(days=1):
        when = last
    return ShiftedClock(hall.timezone, when)
