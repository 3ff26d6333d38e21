"""The doctor's look at the hall's devices: each line (a serial or file path, which a bus of
several shares; a TCP address; a USB device) present, usable by the service's user, and, while
the controller is stopped, answering through its real driver: the ticket printer's paper
sensor (DLE EOT), the ID card reader's SAM status; the other lines are opened. MQTT devices are
reached through the broker (the doctor's broker line)."""

from __future__ import annotations

import grp
import os
import pwd
import stat
from pathlib import Path
from typing import Callable

from controller.config.settings import HallConfig
from controller.core.hall import Device
from controller.floor import device_names
from controller.installation.findings import Finding, Mark, Patient, may_use, who
from controller.installation.service import device_access
from drivers.transport import DeviceLink, TransportError, transport_for

PROBE_SECONDS = 1.0


class CannotWork(Exception):
    """The device answers but cannot do its job (a printer out of paper)."""

_PROBES: dict[str, Callable[[Device, DeviceLink], str]] = {}


def _probe_printer(d: Device, link: DeviceLink) -> str:
    from drivers.ticket_printer import PaperStatus, TicketPrinter

    paper = TicketPrinter(d.id, link, status_timeout=PROBE_SECONDS).paper_status()
    if paper is PaperStatus.OUT:
        raise CannotWork("answers, but its paper is out (缺纸)")
    return "paper near its end (纸将尽)" if paper is PaperStatus.NEAR_END else "paper ok"


def _probe_reader(d: Device, link: DeviceLink) -> str:
    from drivers.id_reader import IdCardReader

    status = IdCardReader(d.id, link, lambda card: None, reply_timeout=PROBE_SECONDS).check_sam()
    if status.sam_failure:
        raise CannotWork(f"answers, but its SAM module fails: {status.description}")
    return f"SAM {status.description}"


_PROBES.update(ticket_printer=_probe_printer, id_reader=_probe_reader)


def _answers(devices: list[Device]) -> str:
    """Open the line; a device that can be asked (printer: paper; reader: SAM) is asked. What
    it said, or TransportError."""
    first = devices[0]
    link = DeviceLink(first.id, transport_for(first.transport, first.port, first.address,
                                              dict(first.options)))
    if not link.ensure_open():
        raise TransportError(link.health.detail if link.health else "does not open")
    try:
        said = [(f"{d.id}: " if len(devices) > 1 else "") + _PROBES[d.kind](d, link)
                for d in devices if d.kind in _PROBES]
    finally:
        link.close()
    return "; ".join(said) or "opens (it cannot be asked; its driver hears it once running)"


def device_findings(p: Patient, config: HallConfig, running: bool) -> list[Finding]:
    """One line per line to a device: a serial or file path (a bus of several), a TCP address,
    a USB device. MQTT devices are reached through the broker (its own line)."""
    lines: dict[tuple[str, str], list[Device]] = {}
    for d in config.hall.devices:
        if d.transport != "mqtt":
            lines.setdefault((d.transport, d.port or d.address or ""), []).append(d)
    groups = device_access(config).groups
    out = []
    for (transport, where), devices in lines.items():
        ids = ", ".join(d.id for d in devices)
        what = f"设备 device {ids}"
        if transport == "usb":
            plugged = _usb_finding(what, where, p.user)
            if plugged.mark is Mark.FAULT or running or not p.probe:
                out.append(plugged)
                continue
        elif transport in ("serial", "file"):
            missing = _path_problem(Path(where), p.user, groups)
            if missing:
                out.append(Finding(Mark.FAULT, what, f"{where} {missing}"))
                continue
        if running:
            out.append(Finding(Mark.OK, what, f"{where} present; in use by the running controller "
                               "(its health: the supervisor page)"))
            continue
        if not p.probe:
            out.append(Finding(Mark.OK, what, f"{where} present"))
            continue
        try:
            out.append(Finding(Mark.OK, what, f"{where} {_answers(devices)}"))
        except CannotWork as e:
            out.append(Finding(Mark.FAULT, what, f"{where} {e}"))
        except (TransportError, OSError) as e:
            out.append(Finding(Mark.FAULT, what, f"{where} does not answer: {e}"))
    return out


def _path_problem(path: Path, user: str | None, groups: tuple[str, ...]) -> str | None:
    if not path.exists():
        return "is missing (unplugged? see hallctl devices)"
    if not may_use(path, user, os.R_OK | os.W_OK, groups):
        st = path.stat()
        owner = f"{_name(pwd.getpwuid, st.st_uid)}:{_name(grp.getgrgid, st.st_gid)} {stat.S_IMODE(st.st_mode):04o}"
        return f"is {owner}: {who(user)} may not read and write it (add the user to its group)"
    return None


def _name(look: Callable, number: int) -> str:
    try:
        return str(look(number)[0])
    except KeyError:
        return str(number)


def _usb_finding(what: str, address: str, user: str | None,
                 sys_root: Path = Path("/sys"), dev_root: Path = Path("/dev")) -> Finding:
    vid, _, pid = address.lower().partition(":")
    for u in device_names.usb_devices(sys_root):
        if (u.vendor_id, u.product_id) == (vid, pid):
            node = _usb_node(sys_root, dev_root, u.usb_path)
            if node is not None and not may_use(node, user, os.R_OK | os.W_OK):
                return Finding(Mark.FAULT, what, f"USB {address} present, but {who(user)} may not use "
                               f"{node} (a udev rule: hallctl devices --udev-rules)")
            return Finding(Mark.OK, what, f"USB {address} present ({u.manufacturer} {u.product})".strip())
    return Finding(Mark.FAULT, what, f"USB {address} is not plugged in")


def _usb_node(sys_root: Path, dev_root: Path, usb_path: str) -> Path | None:
    d = sys_root / "bus" / "usb" / "devices" / usb_path
    try:
        bus, dev = int((d / "busnum").read_text()), int((d / "devnum").read_text())
    except (OSError, ValueError):
        return None
    node = dev_root / "bus" / "usb" / f"{bus:03d}" / f"{dev:03d}"
    return node if node.exists() else None
