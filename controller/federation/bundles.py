"""Configuration flowing down (配置下发): the district centre's bundles, checked, applied, kept.

The centre publishes each hall's configuration as a versioned bundle on the hall's config topic
(retained, QoS 1; vocabulary.district.Bundle). The hall's config agent, on a connection of its
own to the district broker, takes each version above the one it uses and:

- checks it with the hall file's own checks (controller.config.hall.parse_config): the
  bundle's sections over the hall's document, and `disabled_staff` naming staff the result
  has. A bundle that fails is refused with the key and the reason, in the command log (a
  refusal, `district_bundle`), and to the centre (config-report topic), and changes
  nothing: the last good one stays in use;
- keeps it (`district-bundle.json` beside the hall database, written whole and synced) before
  anything takes effect, so a restart without a link uses it;
- applies the staff disables at once (停用, 001 4.2.4), as the admin's disable does: the
  account's logins are refused, its tokens revoked (its next request is a 401) and, through
  the hall thread as the command `ApplyDistrictBundle`, the window it is logged in at closed,
  the visit being served back at the head of its queue, with the event
  `district_bundle_applied` in the event log (and so shipped to the centre). An account the
  centre disabled and a later bundle no longer lists may log in again;
- applies the sections (services, windows, staff, calendar, open and closed days) at the
  hall's next start, which is the safe point: `hallctl run` reads the kept bundle over the
  hall file, so no ticket of a running day meets a service or window that changed under it.
  The event says whether a restart is needed for them;
- reports the version in use: to the centre (the report, the shipper's heartbeat) and in the
  hall's /api/v1/health (`district`).

A version at or below the one in use is ignored (a retained bundle met again after a
reconnect, an older one a broker kept): versions never go backwards.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import queue
import ssl
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from controller.config.hall import HOLIDAYS_FILE, parse_config, read_toml
from controller.config.settings import FederationSettings, HallConfig
from controller.config.tomlkeys import ConfigError
from controller.config.workdays import hall_calendar
from controller.core import commands as c
from controller.core.errors import HallError
from controller.core.hall import Hall
from controller.core.workdays import WorkCalendar
from controller.runtime.hallcontroller import HallController
from controller.store.sessions import SessionStore
from vocabulary import district

log = logging.getLogger(__name__)

BUNDLE_FILE = "district-bundle.json"
DISABLED_BY = "district:"  # staff_disabled.disabled_by of the accounts the centre disabled
DISABLE_REASON = "区县中心停用"


# -- checking -------------------------------------------------------------------------------

def hall_document(hall: Hall) -> dict[str, Any]:
    """The hall file's document for a hall built in code (a test's): its head, hours, services,
    windows and staff, for a bundle to be checked against."""
    def span(s: Any) -> str:
        return f"{s.start:%H:%M}-{s.end:%H:%M}"

    return {
        "hall": {"name": hall.name, "region_code": hall.region_code, "timezone": hall.timezone},
        "hours": {d: {"sessions": [span(s) for s in h.sessions], "breaks": [span(b) for b in h.breaks]}
                  for d, h in hall.hours.items()},
        "services": [{"prefix": s.prefix, "name": s.name, "kind": s.kind, "mean_minutes": s.mean_minutes,
                      "priority_first": s.priority_first} for s in hall.services.values()],
        "windows": [{"number": w.number, "name": w.name, "kind": w.kind.name.lower(),
                     "services": list(w.services), "tidal": w.tidal, "green_channel": w.green_channel}
                    for w in hall.windows.values()],
        "staff": [{"id": s.id, "name": s.name, "role": s.role.value, "pin_hash": s.pin_hash,
                   "a_post": list(s.a_post), "b_post": list(s.b_post), "demo": s.demo,
                   "guidance_desk": s.guidance_desk} for s in hall.staff.values()],
    }


def check(bundle: district.Bundle, document: dict[str, Any],
          workdays: WorkCalendar | None = None) -> HallConfig:
    """The configuration `bundle` makes of the hall file's `document`; ConfigError naming the key
    of the first thing wrong."""
    content = bundle.content
    for key in content:
        if key not in (*district.BUNDLE_SECTIONS, district.DISABLED_STAFF):
            raise ConfigError(key, "not a section a bundle carries; expected "
                              f"{', '.join((*district.BUNDLE_SECTIONS, district.DISABLED_STAFF))}")
    merged = {**document, **{k: v for k, v in content.items() if k in district.BUNDLE_SECTIONS}}
    config = parse_config(merged, f"district bundle v{bundle.version}", workdays)
    disabled = content.get(district.DISABLED_STAFF, [])
    if not isinstance(disabled, list):
        raise ConfigError(district.DISABLED_STAFF, f"expected a list of staff ids, found {disabled!r}")
    for i, sid in enumerate(disabled):
        if not isinstance(sid, str) or sid not in config.hall.staff:
            raise ConfigError(f"{district.DISABLED_STAFF}[{i}]",
                              f"no staff account {sid!r} in this hall; known: {', '.join(config.hall.staff)}")
    return config


# -- keeping --------------------------------------------------------------------------------

def kept_bundle(data_dir: Path) -> district.Bundle | None:
    """The last good bundle kept in `data_dir`, None when there is none (or it is unreadable:
    then the hall runs on its file alone, and says so)."""
    path = data_dir / BUNDLE_FILE
    try:
        return district.Bundle.decode(None, path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, district.BadMessage) as e:
        log.error("district: the kept bundle %s is unreadable (%s); running on the hall file alone", path, e)
        return None


def _keep(data_dir: Path, bundle: district.Bundle) -> None:
    path = data_dir / BUNDLE_FILE
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(bundle.encode())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def configured(config_path: str | Path, config: HallConfig, data_dir: Path,
               federation: FederationSettings | None) -> HallConfig:
    """`hallctl run`: the hall file's configuration with the kept bundle's sections over it (the
    bundle's safe point is the start), or the file's alone without one, or one of another hall,
    or one the file no longer agrees with (said in the log)."""
    bundle = kept_bundle(data_dir)
    if bundle is None or federation is None or bundle.hall != federation.hall_id:
        return config
    try:
        holidays = Path(config_path).parent / HOLIDAYS_FILE
        merged = check(bundle, read_toml(config_path), hall_calendar(holidays if holidays.exists() else None))
    except ConfigError as e:
        log.error("district bundle v%d does not fit %s (%s: %s); running on the hall file alone",
                  bundle.version, config_path, e.key, e.reason)
        return config
    log.info("district bundle v%d (by %s) over %s", bundle.version, bundle.created_by, config_path)
    # the installation's own settings stay the file's: only the hall's rules come down
    return HallConfig(merged.hall, config.mqtt, config.voice, config.display, config.layout, config.federation)


# -- the agent ------------------------------------------------------------------------------

class ConfigAgent:
    """Takes the centre's bundles for the hall `settings.hall_id`; `start()`, `stop()`,
    `version()` (the version in use, or None), `status()` (for /api/v1/health)."""

    def __init__(self, settings: FederationSettings, ctrl: HallController, sessions: SessionStore,
                 data_dir: Path, document: dict[str, Any] | None = None) -> None:
        self.settings = settings
        self.hall = settings.hall_id
        self.ctrl, self.sessions, self.data_dir = ctrl, sessions, data_dir
        self.document = document if document is not None else hall_document(ctrl.hall)
        kept = kept_bundle(data_dir)
        self.in_use = kept if kept is not None and kept.hall == self.hall else None
        self.refused: dict[str, Any] | None = None
        self.connected = False
        self._inbox: queue.Queue[bytes | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.client = self._client()

    def version(self) -> int | None:
        bundle = self.in_use
        return bundle.version if bundle is not None else None

    def status(self) -> dict[str, Any]:
        bundle = self.in_use
        return {"hall_id": self.hall, "link": "online" if self.connected else "offline",
                "bundle": None if bundle is None else {
                    "version": bundle.version, "created_at": bundle.created_at, "created_by": bundle.created_by},
                "last_refused": self.refused}

    def _client(self) -> mqtt.Client:
        s = self.settings
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"hall-{self.hall}-config", protocol=mqtt.MQTTv5)
        user, password = s.credentials()
        if user:
            c.username_pw_set(user, password)
        if s.tls:
            c.tls_set(ca_certs=s.ca_file, cert_reqs=ssl.CERT_REQUIRED)
        c.reconnect_delay_set(1, 10)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = lambda client, userdata, message: self._inbox.put(bytes(message.payload))
        return c

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("district broker refused the config agent: %s", reason_code)
            return
        self.connected = True
        # the retained bundle comes with the subscription: whatever the centre published meanwhile
        client.subscribe(district.config_topic(self.hall), qos=1)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected = False

    def start(self) -> ConfigAgent:
        if self.in_use is not None:  # the kept one's disables hold whatever happened before a crash
            self._apply_staff(self.in_use, starting=True)
        self._thread = threading.Thread(target=self._run, name=f"district-config-{self.hall}", daemon=True)
        self._thread.start()
        self.client.connect_async(self.settings.host, self.settings.port, keepalive=30)
        self.client.loop_start()
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self._inbox.put(None)
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        while (payload := self._inbox.get()) is not None:
            try:
                self.take(payload)
            except Exception:  # the hall's database away: the next bundle (or restart) tries again
                log.exception("district config agent")

    # -- a bundle -------------------------------------------------------------------------

    def take(self, payload: bytes) -> str | None:
        """A bundle off the wire: applied, refused, or (None) ignored as not newer."""
        try:
            bundle = district.Bundle.decode(district.config_topic(self.hall), payload)
        except district.BadMessage as e:
            return self._refuse(_version_of(payload), "bundle", str(e))
        in_use = self.version() or 0
        if bundle.version <= in_use:
            if bundle.version < in_use:
                log.warning("district bundle v%d ignored: v%d is in use", bundle.version, in_use)
            return None
        try:
            config = check(bundle, self.document)
        except ConfigError as e:
            return self._refuse(bundle.version, e.key, e.reason)
        _keep(self.data_dir, bundle)
        self.in_use = bundle
        restart = _sections(config.hall) != _sections(self.ctrl.hall)
        disabled, enabled = self._apply_staff(bundle, restart)
        log.info("district bundle v%d applied (disabled %s, enabled %s)%s", bundle.version, disabled, enabled,
                 "; its sections from the next start" if restart else "")
        self._report(district.ConfigReport(bundle.version, district.APPLIED, bundle.version, self._now()))
        return district.APPLIED

    def _refuse(self, version: int, key: str, reason: str) -> str:
        log.error("district bundle v%d refused: %s: %s (v%s stays in use)", version, key, reason, self.version())
        self.refused = {"version": version, "key": key, "reason": reason, "at": self._now()}
        error = HallError("invalid_bundle", f"区县中心下发的配置第 {version} 版不正确，未采用：{key}: {reason}")
        self.ctrl.refuse("district", "district_bundle", {"version": version, "key": key}, error)
        self._report(district.ConfigReport(version, district.REFUSED, self.version() or 0, self._now(),
                                           key, reason))
        return district.REFUSED

    def _report(self, report: district.ConfigReport) -> None:
        self.client.publish(district.config_report_topic(self.hall), report.encode(), qos=1, retain=True)

    def _now(self) -> str:
        return self.ctrl.clock().isoformat()

    def _apply_staff(self, bundle: district.Bundle, restart_needed: bool = False,
                     starting: bool = False) -> tuple[list[str], list[str]]:
        """The bundle's disabled accounts disabled at once (logins refused, tokens revoked), the
        accounts the centre disabled before and no longer lists enabled, then, on the hall
        thread, the windows of the disabled closed and the bundle's event; which accounts.
        `starting`: the kept bundle at start, its event only if it still changed something."""
        wanted = set(bundle.content.get(district.DISABLED_STAFF, []))
        current = {r["staff_id"]: r["disabled_by"] for r in self.sessions.disabled()}
        disabled, enabled = [], []
        for sid in sorted(wanted - current.keys()):
            self.sessions.disable(sid, f"{DISABLED_BY}v{bundle.version}", DISABLE_REASON, self.ctrl.clock())
            disabled.append(sid)
        for sid, by in sorted(current.items()):
            if sid not in wanted and str(by).startswith(DISABLED_BY):
                self.sessions.enable(sid)
                enabled.append(sid)
        holding = {w.staff_id for w in self.ctrl.windows().values()} & wanted
        if starting and not (disabled or enabled or holding):
            return disabled, enabled
        # every account it disables: a window one still holds (a crash between) closes too
        self.ctrl.execute(c.ApplyDistrictBundle(bundle.version, bundle.created_by, tuple(sorted(wanted)),
                                                tuple(enabled), restart_needed), f"district:{bundle.created_by}")
        return disabled, enabled


def _sections(hall: Hall) -> tuple[Any, ...]:
    """What of the hall a bundle sets (the working-day calendar is the hall's own)."""
    return (hall.services, hall.windows, hall.staff, dataclasses.replace(hall.calendar, workdays=None))


def _version_of(payload: bytes) -> int:
    try:
        version = json.loads(payload).get("version")
    except (ValueError, AttributeError, UnicodeDecodeError):
        return 0
    return version if isinstance(version, int) and version >= 0 else 0


def start_config_agent(settings: FederationSettings, ctrl: HallController, sessions: SessionStore,
                       data_dir: Path, document: dict[str, Any] | None = None) -> ConfigAgent:
    return ConfigAgent(settings, ctrl, sessions, data_dir, document).start()
