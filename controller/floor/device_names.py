"""固定设备名: the serial and USB devices plugged into the hall's PC, and stable names for them.

/dev/ttyUSB0 is whichever USB-serial adapter the kernel found first: after a reboot, or a cable
moved to another socket, the ID card reader may be ttyUSB1 and the counter bus ttyUSB0.
`hallctl devices` lists what is plugged in, read from /sys as udev reads it (vendor, product,
serial number, the USB socket, the /dev/serial/by-id link), and `hallctl devices --udev-rules`
writes udev rules that give each serial line the hall file names a name of its own,
/dev/hall/<name>, matched on the adapter's vendor, product and serial number (or, for an
adapter without a serial number, the USB socket it is plugged into).

`sys_root` and `dev_root` are / 's /sys and /dev, or a copy of their shape in a test.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from controller.config.settings import HallConfig

RULES_FILE = "/etc/udev/rules.d/70-hall-devices.rules"
STABLE_DIR = "/dev/hall"
_UNSTABLE = re.compile(r"^/dev/tty(USB|ACM)\d+$")


@dataclass(frozen=True)
class SerialPort:
    """One serial line present: its tty, and the USB device it belongs to if any."""

    name: str  # ttyUSB0
    driver: str  # the bus it hangs off: usb-serial, usb (CDC ACM), pnp, pci, ...
    vendor_id: str = ""  # "1a86"
    product_id: str = ""
    serial: str = ""
    manufacturer: str = ""
    product: str = ""
    usb_path: str = ""  # the USB device's kernel name, i.e. its socket: "1-1.2"
    interface: str = ""  # "00": which serial line of a multi-port adapter
    by_id: str = ""  # /dev/serial/by-id/usb-...

    @property
    def dev(self) -> str:
        return f"/dev/{self.name}"

    @property
    def usb(self) -> bool:
        return bool(self.vendor_id)


@dataclass(frozen=True)
class UsbDevice:
    """A USB device that is no serial line (a ticket printer spoken to by libusb)."""

    usb_path: str
    vendor_id: str
    product_id: str
    serial: str = ""
    manufacturer: str = ""
    product: str = ""


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""


def _usb_device(start: Path) -> Path | None:
    """The USB device (the directory with idVendor) at or above `start` in /sys."""
    for p in (start, *start.parents):
        if (p / "idVendor").exists():
            return p
        if p.name in ("devices", "sys", "/"):
            break
    return None


def _by_id(dev_root: Path) -> dict[str, str]:
    """tty name -> its /dev/serial/by-id link."""
    links: dict[str, str] = {}
    folder = dev_root / "serial" / "by-id"
    if folder.is_dir():
        for link in sorted(folder.iterdir()):
            if link.is_symlink():
                links[Path(os.readlink(link)).name] = f"/dev/serial/by-id/{link.name}"
    return links


def serial_ports(sys_root: Path = Path("/sys"), dev_root: Path = Path("/dev")) -> list[SerialPort]:
    """The serial lines present (as pyserial's list_ports and udev see them): USB-serial
    adapters and CDC ACM devices, and built-in UARTs that are there (not the 32 ttyS
    placeholders the kernel makes on a platform bus whether or not a port exists)."""
    links = _by_id(dev_root)
    ports = []
    tty_dir = sys_root / "class" / "tty"
    for entry in sorted(tty_dir.iterdir()) if tty_dir.is_dir() else []:
        if not (entry / "device").exists():
            continue
        device = (entry / "device").resolve()
        driver = (device / "subsystem").resolve().name
        if driver == "platform":
            continue
        usb = _usb_device(device)
        if usb is None:
            ports.append(SerialPort(entry.name, driver, by_id=links.get(entry.name, "")))
            continue
        interface = device if driver == "usb" else device.parent
        ports.append(SerialPort(
            entry.name, driver, _read(usb / "idVendor"), _read(usb / "idProduct"),
            _read(usb / "serial"), _read(usb / "manufacturer"), _read(usb / "product"), usb.name,
            _read(interface / "bInterfaceNumber"), links.get(entry.name, "")))
    return ports


def usb_devices(sys_root: Path = Path("/sys")) -> list[UsbDevice]:
    """The USB devices plugged in, hubs left out."""
    found = []
    folder = sys_root / "bus" / "usb" / "devices"
    for d in sorted(folder.iterdir()) if folder.is_dir() else []:
        if not (d / "idVendor").exists() or _read(d / "bDeviceClass") == "09":
            continue
        found.append(UsbDevice(d.name, _read(d / "idVendor"), _read(d / "idProduct"),
                               _read(d / "serial"), _read(d / "manufacturer"), _read(d / "product")))
    return found


def listing(ports: list[SerialPort], usb: list[UsbDevice]) -> str:
    """What `hallctl devices` prints: one line per serial line, then the other USB devices."""
    lines = ["串口 serial lines:" if ports else "串口 serial lines: none"]
    for p in ports:
        if p.usb:
            what = " ".join(x for x in (p.manufacturer, p.product) if x) or "?"
            lines.append(f"  {p.dev}  {p.vendor_id}:{p.product_id}  {what}  "
                         f"serial {p.serial or '(none)'}  USB socket {p.usb_path}"
                         + (f" interface {p.interface}" if p.interface else "")
                         + (f"\n      {p.by_id}" if p.by_id else ""))
        else:
            lines.append(f"  {p.dev}  built-in ({p.driver})")
    tty_usb = {p.usb_path for p in ports if p.usb}
    others = [u for u in usb if u.usb_path not in tty_usb]
    lines.append("其他 USB 设备 other USB devices:" if others else "其他 USB 设备 other USB devices: none")
    for u in others:
        what = " ".join(x for x in (u.manufacturer, u.product) if x) or "?"
        lines.append(f"  {u.vendor_id}:{u.product_id}  {what}  serial {u.serial or '(none)'}  "
                     f"USB socket {u.usb_path}")
    return "\n".join(lines)


# --- the hall file's devices, and their stable names -------------------------------------------


def unstable_ports(config: HallConfig) -> list[tuple[str, str]]:
    """(the key, the path) of each device named by a kernel number (/dev/ttyUSBn, ttyACMn)
    that may name another adapter after a reboot."""
    return [(f"devices[{i}].port", d.port) for i, d in enumerate(config.hall.devices)
            if d.transport == "serial" and d.port and _UNSTABLE.match(d.port)]


def unstable_warnings(config: HallConfig) -> list[str]:
    """One warning per unstable path, naming its first key (a bus has several devices)."""
    keys: dict[str, list[str]] = {}
    for key, path in unstable_ports(config):
        keys.setdefault(path, []).append(key)
    return [f"{found[0]}: {path!r}" + (f" (and {len(found) - 1} more devices on it)" if len(found) > 1 else "")
            + " may be another adapter after a reboot or a replug; give it a stable name "
            "(`hallctl devices --udev-rules --config ...`, then its /dev/hall/... path) or its "
            "/dev/serial/by-id/... path" for path, found in keys.items()]


def _name_for(devices: list) -> str:
    """The stable name of a line the hall file names: its device's id, or for a bus shared by
    several (RS-485: keypads and pads of a row of windows) what is on it and which windows."""
    if len(devices) == 1:
        return str(devices[0].id)
    kinds = "-".join(sorted({d.kind.split("_")[-1] for d in devices}))
    windows = sorted(d.window for d in devices if d.window is not None)
    span = f"-w{windows[0]}-{windows[-1]}" if windows else ""
    return f"{kinds}-bus{span}"


@dataclass(frozen=True)
class Named:
    """A configured serial line and what became of it: its rule, or why it has none."""

    name: str
    configured: str
    device_ids: tuple[str, ...]
    rule: str | None
    note: str

    def comment(self) -> str:
        return f"# {', '.join(self.device_ids)} (now {self.configured}: {self.note})"


def _resolve(path: str, dev_root: Path) -> str | None:
    """The device node a /dev path stands for now (following by-id and /dev/hall links):
    its name, or None when there is nothing there."""
    if not path.startswith("/dev/"):
        return None
    try:
        return (dev_root / path.removeprefix("/dev/")).resolve(strict=True).name
    except OSError:
        return None


def _rule(port: SerialPort, name: str, by_serial: bool, several: bool) -> str:
    match = [f'ATTRS{{idVendor}}=="{port.vendor_id}"', f'ATTRS{{idProduct}}=="{port.product_id}"']
    if by_serial:
        match.append(f'ATTRS{{serial}}=="{port.serial}"')
    else:
        # KERNELS and the ATTRS must match the same USB device: the adapter in that socket
        match.insert(0, f'KERNELS=="{port.usb_path}"')
    if several and port.interface:
        match.append(f'ENV{{ID_USB_INTERFACE_NUM}}=="{port.interface}"')
    return ", ".join(['SUBSYSTEM=="tty"', *match, f'SYMLINK+="hall/{name}"',
                      'GROUP="dialout"', 'MODE="0660"'])


def stable_names(config: HallConfig, ports: list[SerialPort],
                 dev_root: Path = Path("/dev")) -> list[Named]:
    """A rule for each serial line of the hall file that is a USB adapter present now."""
    by_path: dict[str, list] = {}
    for d in config.hall.devices:
        if d.transport == "serial" and d.port:
            by_path.setdefault(d.port, []).append(d)
    present = {p.name: p for p in ports}
    serials = [(p.vendor_id, p.product_id, p.serial) for p in ports if p.serial]
    per_usb = [p.usb_path for p in ports if p.usb]
    taken: set[str] = set()
    out = []
    for path, devices in by_path.items():
        name = _name_for(devices)
        while name in taken:
            name += "-2"
        taken.add(name)
        ids = tuple(d.id for d in devices)
        node = _resolve(path, dev_root)
        port = present.get(node or "")
        if node is None:
            out.append(Named(name, path, ids, None, "is not there now: plug it in and run this again"))
        elif port is None:
            out.append(Named(name, path, ids, None, "is no USB adapter or built-in serial port "
                             "(a pty?): nothing to name"))
        elif not port.usb:
            out.append(Named(name, path, ids, None, f"{port.dev} is built in ({port.driver}), not "
                             "USB: its name does not move"))
        else:
            unique = bool(port.serial) and serials.count((port.vendor_id, port.product_id, port.serial)) == 1
            several = per_usb.count(port.usb_path) > 1
            dev = "" if port.dev == path else f"{port.dev}, "
            note = (f"{dev}serial {port.serial}" if unique else
                    f"{dev}no serial number of its own: named by its USB socket "
                    f"{port.usb_path}; keep it plugged into that socket")
            out.append(Named(name, path, ids, _rule(port, name, unique, several), note))
    return out


def usb_rules(config: HallConfig, group: str) -> list[str]:
    """For each `usb` device (a printer spoken to by libusb): its /dev/bus/usb node, which
    changes at every plug, given to the service's group."""
    seen: dict[str, str] = {}
    for d in config.hall.devices:
        if d.transport == "usb" and d.address:
            seen.setdefault(d.address.lower(), d.id)
    out = []
    for address, device_id in seen.items():
        vid, _, pid = address.partition(":")
        out += [f"# {device_id} (USB {address}): usable by the group {group}",
                f'SUBSYSTEM=="usb", ENV{{DEVTYPE}}=="usb_device", ATTR{{idVendor}}=="{vid}", '
                f'ATTR{{idProduct}}=="{pid}", GROUP="{group}", MODE="0660"']
    return out


def udev_rules(named: list[Named], source: str, usb: list[str] | None = None) -> str:
    """The rules file (RULES_FILE) for the lines that have a rule, and the USB devices' rules."""
    lines = [f"# Stable names for the hall's serial devices: `hallctl devices --udev-rules --config {source}`.",
             f"# Install as {RULES_FILE}, then: udevadm control --reload && udevadm trigger",
             "# and set each device's port in the hall file to its /dev/hall/... name."]
    for n in named:
        if n.rule is not None:
            lines += ["", n.comment(), n.rule]
    if usb:
        lines += ["", *usb]
    return "\n".join(lines) + "\n"
