"""Stable device names: `hallctl devices` reads the serial lines and USB devices from /sys as udev
does, and `--udev-rules` gives each serial line of the hall file a /dev/hall name matched on the
adapter's vendor, product and serial number; `hallctl check-config` warns of /dev/ttyUSBn.

No USB bus can be plugged into here, so the adapters are a copy of the shape Linux gives them
under /sys and /dev (the directories and links of a CH340 and an FTDI adapter on a USB hub and
a CDC ACM scanner, as on a Debian PC) in a temporary directory; a pty stands for a line that is
present but no USB adapter."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from controller.cli import main
from controller.config.hall import load_config
from controller.floor import device_names
from tests.test_running_a_hall import hall_file

ROOT = Path(__file__).resolve().parent.parent
PCI = "devices/pci0000:00/0000:00:14.0/usb1"


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def link(path: Path, target: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(os.path.relpath(target, path.parent))


class FakeMachine:
    """/sys and /dev as the kernel and udev lay them out, under `base`."""

    def __init__(self, base: Path) -> None:
        self.sys, self.dev = base / "sys", base / "dev"
        for bus in ("usb-serial", "usb", "pnp"):
            (self.sys / "bus" / bus).mkdir(parents=True)
        (self.sys / "bus" / "usb" / "devices").mkdir()

    def usb_device(self, usb_path: str, vid: str, pid: str, serial: str | None, maker: str,
                   product: str) -> Path:
        d = self.sys / PCI / usb_path
        for name, value in (("idVendor", vid), ("idProduct", pid), ("manufacturer", maker),
                            ("product", product), ("bDeviceClass", "00"), ("busnum", "1"),
                            ("devnum", str(len(usb_path)))):
            write(d / name, value)
        if serial is not None:
            write(d / "serial", serial)
        link(self.sys / "bus/usb/devices" / usb_path, d)
        return d

    def tty(self, name: str, usb: Path, interface: int, acm: bool = False, by_id: str = "") -> None:
        iface = usb / f"{usb.name}:1.{interface}"
        write(iface / "bInterfaceNumber", f"{interface:02x}")
        if acm:  # cdc_acm: the tty hangs off the USB interface itself
            port, tty_dir = iface, iface / "tty" / name
            link(iface / "subsystem", self.sys / "bus/usb")
        else:  # usb-serial: the interface holds a usb-serial port, which holds the tty
            port = iface / name
            tty_dir = port / "tty" / name
            link(port / "subsystem", self.sys / "bus/usb-serial")
        tty_dir.mkdir(parents=True)
        link(tty_dir / "device", port)
        link(self.sys / "class/tty" / name, tty_dir)
        write(self.dev / name, "")
        if by_id:
            link(self.dev / "serial/by-id" / by_id, self.dev / name)

    def builtin(self, name: str) -> None:
        port = self.sys / "devices/pnp0/00:01"
        link(port / "subsystem", self.sys / "bus/pnp")
        (self.sys / "devices/virtual/tty" / name).mkdir(parents=True)
        link(self.sys / "devices/virtual/tty" / name / "device", port)
        link(self.sys / "class/tty" / name, self.sys / "devices/virtual/tty" / name)
        write(self.dev / name, "")


def hall_pc(base: Path) -> FakeMachine:
    """The kiosk's ID card reader on a CH340 (serial number 5A2B), the counter bus on an FTDI
    FT232R with a serial number, the window bars on a CH340 without one, a CDC ACM scanner,
    COM1 built in, and the kiosk printer on USB (no serial line)."""
    m = FakeMachine(base)
    reader = m.usb_device("1-1.1", "1a86", "7523", "5A2B", "QinHeng", "USB Serial")
    m.tty("ttyUSB0", reader, 0, by_id="usb-1a86_USB_Serial_5A2B-if00-port0")
    bus = m.usb_device("1-1.2", "0403", "6001", "A10K3XYZ", "FTDI", "FT232R USB UART")
    m.tty("ttyUSB1", bus, 0, by_id="usb-FTDI_FT232R_USB_UART_A10K3XYZ-if00-port0")
    bars = m.usb_device("1-1.3", "1a86", "7523", None, "QinHeng", "USB Serial")
    m.tty("ttyUSB2", bars, 0)
    scanner = m.usb_device("1-1.4", "2dd6", "26ca", "NLS-01", "Newland", "NLS-HR22")
    m.tty("ttyACM0", scanner, 0, acm=True, by_id="usb-Newland_NLS-HR22_NLS-01-if00")
    m.builtin("ttyS0")
    # the 31 placeholder ttyS ports the 8250 driver makes without hardware: on the platform bus
    placeholder = m.sys / "devices/platform/serial8250"
    link(placeholder / "subsystem", m.sys / "bus/platform")
    (m.sys / "devices/platform/serial8250/tty/ttyS1").mkdir(parents=True)
    link(m.sys / "devices/platform/serial8250/tty/ttyS1/device", placeholder)
    link(m.sys / "class/tty/ttyS1", m.sys / "devices/platform/serial8250/tty/ttyS1")
    m.usb_device("1-1.5", "0416", "5011", None, "Winbond", "POS80 Printer")
    return m


def test_the_serial_lines_plugged_in_are_read_from_sys(tmp_path):
    m = hall_pc(tmp_path)
    ports = {p.name: p for p in device_names.serial_ports(m.sys, m.dev)}
    assert sorted(ports) == ["ttyACM0", "ttyS0", "ttyUSB0", "ttyUSB1", "ttyUSB2"]  # no ttyS1
    reader = ports["ttyUSB0"]
    assert (reader.vendor_id, reader.product_id, reader.serial, reader.usb_path, reader.interface) == \
        ("1a86", "7523", "5A2B", "1-1.1", "00")
    assert reader.by_id == "/dev/serial/by-id/usb-1a86_USB_Serial_5A2B-if00-port0"
    assert (ports["ttyACM0"].driver, ports["ttyACM0"].serial) == ("usb", "NLS-01")
    assert ports["ttyUSB2"].serial == "" and not ports["ttyS0"].usb

    r = subprocess.run([sys.executable, "-m", "controller.cli", "devices", "--sys-root", str(m.sys),
                        "--dev-root", str(m.dev)], capture_output=True, text=True, timeout=60,
                       cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    assert re.search(r"/dev/ttyUSB1  0403:6001  FTDI FT232R USB UART  serial A10K3XYZ  USB socket 1-1.2",
                     r.stdout)
    assert "/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A10K3XYZ-if00-port0" in r.stdout
    assert "/dev/ttyS0  built-in (pnp)" in r.stdout
    # the printer spoken to by libusb is a USB device, not a serial line
    assert re.search(r"other USB devices:\n  0416:5011  Winbond POS80 Printer", r.stdout)


DEVICES = """
[[devices]]
id = "kiosk-id-reader"
kind = "id_reader"
transport = "serial"
port = "/dev/serial/by-id/usb-1a86_USB_Serial_5A2B-if00-port0"

[[devices]]
id = "kiosk-scanner"
kind = "code_scanner"
transport = "serial"
port = "/dev/ttyACM0"

[[devices]]
id = "keypad-01"
kind = "counter_keypad"
transport = "serial"
port = "/dev/ttyUSB1"
window = 1
options = { address = "1" }

[[devices]]
id = "evaluator-02"
kind = "evaluator_pad"
transport = "serial"
port = "/dev/ttyUSB1"
window = 2
options = { address = "12" }

[[devices]]
id = "display-01"
kind = "caller_display"
transport = "serial"
port = "/dev/ttyUSB2"
window = 1
options = { address = "1" }

[[devices]]
id = "printer-entrance"
kind = "ticket_printer"
transport = "usb"
address = "0416:5011"
"""


def test_udev_rules_give_each_configured_line_a_stable_name(tmp_path, capsys):
    m = hall_pc(tmp_path)
    config = hall_file(tmp_path / "hall", DEVICES)
    rules = tmp_path / "70-hall-devices.rules"
    assert main(["devices", "--udev-rules", "--config", str(config), "--output", str(rules),
                 "--sys-root", str(m.sys), "--dev-root", str(m.dev)]) == 0
    text = rules.read_text()
    # by serial number: wherever it is plugged in
    assert ('SUBSYSTEM=="tty", ATTRS{idVendor}=="1a86", ATTRS{idProduct}=="7523", ATTRS{serial}=="5A2B", '
            'SYMLINK+="hall/kiosk-id-reader", GROUP="dialout", MODE="0660"') in text
    assert 'ATTRS{serial}=="NLS-01", SYMLINK+="hall/kiosk-scanner"' in text
    # a bus shared by a row of windows' keypads and pads is named for what is on it
    assert 'ATTRS{serial}=="A10K3XYZ", SYMLINK+="hall/keypad-pad-bus-w1-2"' in text
    # no serial number: the socket it is plugged into, with its vendor and product
    assert ('SUBSYSTEM=="tty", KERNELS=="1-1.3", ATTRS{idVendor}=="1a86", ATTRS{idProduct}=="7523", '
            'SYMLINK+="hall/display-01"') in text
    assert len([x for x in text.splitlines() if x.startswith('SUBSYSTEM=="tty"')]) == 4
    # the printer spoken to by libusb: its /dev/bus/usb node (new at every plug) for the service
    assert ('SUBSYSTEM=="usb", ENV{DEVTYPE}=="usb_device", ATTR{idVendor}=="0416", '
            'ATTR{idProduct}=="5011", GROUP="hallctl", MODE="0660"') in text
    err = capsys.readouterr().err
    assert 'keypad-01, evaluator-02: port = "/dev/hall/keypad-pad-bus-w1-2"  (was /dev/ttyUSB1' in err
    assert "display-01" in err and "keep it plugged into that socket" in err


def test_two_adapters_with_one_serial_number_are_told_apart_by_their_socket(tmp_path):
    m = FakeMachine(tmp_path)  # cheap clones all say "0001"
    for n, socket in enumerate(("1-2", "1-3")):
        m.tty(f"ttyUSB{n}", m.usb_device(socket, "1a86", "7523", "0001", "QinHeng", "USB Serial"), 0)
    config = load_config(hall_file(tmp_path / "hall", DEVICES.replace("/dev/serial/by-id/usb-1a86_USB_Serial_5A2B"
                                                                      "-if00-port0", "/dev/ttyUSB0")))
    named = {n.name: n for n in device_names.stable_names(config, device_names.serial_ports(m.sys, m.dev),
                                                           m.dev)}
    assert 'KERNELS=="1-2"' in named["kiosk-id-reader"].rule
    assert 'KERNELS=="1-3"' in named["keypad-pad-bus-w1-2"].rule
    assert named["kiosk-scanner"].rule is None and "not there" in named["kiosk-scanner"].note


def test_a_pty_is_present_but_no_adapter_to_name(tmp_path):
    master, slave = os.openpty()
    try:
        pty = os.ttyname(slave)
        config = load_config(hall_file(tmp_path / "hall", f"""
[[devices]]
id = "kiosk-id-reader"
kind = "id_reader"
transport = "serial"
port = "{pty}"
"""))
        m = FakeMachine(tmp_path)
        [named] = device_names.stable_names(config, device_names.serial_ports(m.sys), Path("/dev"))
    finally:
        os.close(master)
        os.close(slave)
    assert named.rule is None and "no USB adapter" in named.note


def test_check_config_warns_of_ttyusb_paths_naming_the_key(tmp_path, capsys):
    config = hall_file(tmp_path / "hall", DEVICES)
    assert main(["check-config", str(config)]) == 0  # a warning, not a failure
    err = capsys.readouterr().err
    assert "warning: devices[1].port: '/dev/ttyACM0' may be another adapter" in err
    assert "warning: devices[2].port: '/dev/ttyUSB1' (and 1 more devices on it)" in err
    assert "devices[0].port" not in err  # a by-id path is stable
