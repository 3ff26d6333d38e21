"""The hallctl commands that install and look after a hall's PC: `install`, `uninstall`,
`devices` and `doctor` (registered on hallctl's parser by `register`)."""

from __future__ import annotations

import argparse
import pwd
import sys
from pathlib import Path

from controller.config.hall import load_config
from controller.floor import device_names
from controller.installation import doctor, service


def cmd_install(args: argparse.Namespace) -> int:
    written = service.install(args.config, args.data_dir, args.root, args.user, args.hallctl,
                              args.host, args.port, args.public_url)
    root = Path(args.root)
    for path in written:
        print(f"wrote {path}")
    if root.resolve() == Path("/"):
        print(f"data directory {args.data_dir}, owned by {args.user}")
        print(f"enabled {service.SERVICE} and {service.BACKUP_TIMER}; start it now: "
              f"systemctl start {service.SERVICE}; check it: hallctl doctor --config "
              f"{service.CONFIG_DIR / service.CONFIG_NAME} --data-dir {args.data_dir} --user {args.user}")
    else:
        print(f"installed under {root}, enabled there ({service.SERVICE}, {service.BACKUP_TIMER})")
    return 0


def cmd_uninstall(args: argparse.Namespace) -> int:
    removed, data_dir = service.uninstall(args.root)
    for path in removed:
        print(f"removed {path}")
    if (Path(args.root) / data_dir.lstrip("/")).exists():
        print(f"the hall's data in {data_dir} is kept (its database and key); delete it yourself "
              "once it is backed up elsewhere")
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    sys_root, dev_root = Path(args.sys_root), Path(args.dev_root)
    ports = device_names.serial_ports(sys_root, dev_root)
    if not args.udev_rules:
        print(device_names.listing(ports, device_names.usb_devices(sys_root)))
        return 0
    if not args.config:
        print("hallctl: --udev-rules needs --config: the rules name the hall file's devices",
              file=sys.stderr)
        return 2
    config = load_config(args.config)
    named = device_names.stable_names(config, ports, dev_root)
    rules = device_names.udev_rules(named, args.config, device_names.usb_rules(config, args.group))
    if args.output:
        Path(args.output).write_text(rules, encoding="utf-8")
    else:
        print(rules, end="")
    for n in named:
        if n.rule is not None:
            print(f"{', '.join(n.device_ids)}: port = \"{device_names.STABLE_DIR}/{n.name}\"  "
                  f"(was {n.configured}; {n.note})", file=sys.stderr)
        else:
            print(f"{', '.join(n.device_ids)}: no rule: {n.configured} {n.note}", file=sys.stderr)
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    if args.user is not None:
        try:
            pwd.getpwnam(args.user)
        except KeyError:
            print(f"hallctl: no user {args.user!r} on this machine (hallctl install makes it)",
                  file=sys.stderr)
            return 2
    findings = doctor.examine(doctor.Patient(Path(args.config), Path(args.data_dir), args.host,
                                             args.port, args.user, not args.no_probe))
    text, status = doctor.report(findings)
    print(text)
    return status


def register(sub: argparse._SubParsersAction) -> None:
    ins = sub.add_parser("install", help="install the hall as a systemd service (its own user, "
                                         "a watchdog, a sandbox, a nightly backup timer)")
    ins.add_argument("--config", required=True, help="hall description (TOML), copied to /etc/hall")
    ins.add_argument("--data-dir", required=True, help="where the hall database lives, e.g. /var/lib/hall")
    ins.add_argument("--root", default="/", help="install under this directory instead of / "
                                                 "(an image being built, a test)")
    ins.add_argument("--user", default="hallctl", help="the service's own user (made if missing)")
    ins.add_argument("--hallctl", help="the hallctl program the service runs (default: this one)")
    ins.add_argument("--host", default="0.0.0.0", help="where the web API listens (default: every address)")
    ins.add_argument("--port", type=int, default=8000)
    ins.add_argument("--public-url", help="the address printed in ticket QR codes")
    ins.set_defaults(func=cmd_install)

    uni = sub.add_parser("uninstall", help="stop and remove the service (the data is kept)")
    uni.add_argument("--root", default="/")
    uni.set_defaults(func=cmd_uninstall)

    dev = sub.add_parser("devices", help="list the serial and USB devices plugged in; with "
                                         "--udev-rules, stable /dev/hall names for the hall's")
    dev.add_argument("--config", help="hall description (TOML), for --udev-rules")
    dev.add_argument("--udev-rules", action="store_true",
                     help=f"write udev rules naming each configured line (for {device_names.RULES_FILE})")
    dev.add_argument("--group", default="hallctl",
                     help="the group given the hall's USB devices (the service's user's, default hallctl)")
    dev.add_argument("--output", help="write the rules to this file instead of printing them")
    dev.add_argument("--sys-root", default="/sys", help=argparse.SUPPRESS)
    dev.add_argument("--dev-root", default="/dev", help=argparse.SUPPRESS)
    dev.set_defaults(func=cmd_devices)

    doc = sub.add_parser("doctor", help="check everything the hall needs; one line each, "
                                        "exit 1 on a fault")
    doc.add_argument("--config", required=True, help="hall description (TOML)")
    doc.add_argument("--data-dir", required=True)
    doc.add_argument("--host", default="127.0.0.1", help="where the web API listens")
    doc.add_argument("--port", type=int, default=8000)
    doc.add_argument("--user", help="check access as the service's user (e.g. hallctl); "
                                    "default: whoever runs the doctor")
    doc.add_argument("--no-probe", action="store_true", help="do not ask idle devices to answer")
    doc.set_defaults(func=cmd_doctor)
