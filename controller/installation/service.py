"""服务安装: `hallctl install` puts the controller on a hall's PC as a systemd service, and
`hallctl uninstall` takes it off again.

What it writes, under `--root` (default `/`; a temporary root for the tests):

- `/etc/hall/hall.toml` (and the `holidays.toml` beside the hall file, when there is one): the
  hall file the service runs, copied and checked first;
- `/etc/hall/hall.env` (0600): the service's environment, for secrets such as
  HALL_MQTT_PASSWORD or HALL_SECRET_KEY (made once, empty but for comments);
- `/etc/sysusers.d/hall-controller.conf`: the service's own user (`--user`, default hallctl),
  made by systemd-sysusers, home the data directory, no shell;
- `/etc/systemd/system/hall-controller.service`: `hallctl run` as that user, Type=notify with a
  watchdog (controller/runtime/service_notify.py), restarted on failure, sandboxed: the whole
  file system read-only but the data directory, a private /tmp, no new privileges, no
  capabilities, and of /dev only the devices the hall file names;
- `/etc/systemd/system/hall-backup.service` and `hall-backup.timer`: `hallctl backup` every
  night, in the same sandbox (no devices);
- the data directory itself (kept by uninstall: it holds the hall's records).

Every path written is listed in `/etc/hall/installed.json`, and uninstall removes exactly
those (and the directories install made, once empty). On the real root, install also makes the
user, hands it the data directory, reloads systemd and enables the service and the timer;
under another root it enables them there (`systemctl --root`).
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from controller.config.hall import HOLIDAYS_FILE, load_config
from controller.config.settings import HallConfig

SERVICE = "hall-controller.service"
BACKUP_SERVICE = "hall-backup.service"
BACKUP_TIMER = "hall-backup.timer"
CONFIG_DIR = PurePosixPath("/etc/hall")
CONFIG_NAME = "hall.toml"
ENV_NAME = "hall.env"
MANIFEST = CONFIG_DIR / "installed.json"
UNIT_DIR = PurePosixPath("/etc/systemd/system")
SYSUSERS = PurePosixPath("/etc/sysusers.d/hall-controller.conf")
WATCHDOG_SECONDS = 30
BACKUP_AT = "02:30"
# the open files `hallctl run` needs for its default 1000 web connections (README, slow requests)
OPEN_FILES = 4096
# where systemctl enable puts its links: made by install, so removed once empty
WANTS_DIRS = (UNIT_DIR / "multi-user.target.wants", UNIT_DIR / "timers.target.wants")

_USB_SERIAL = re.compile(r"^/dev/(ttyUSB\d+|ttyACM\d+|serial/by-(id|path)/.*|hall/.*)$")


@dataclass(frozen=True)
class DeviceAccess:
    """What of /dev (and beyond) the service may open: DeviceAllow= lines, the groups that own
    those nodes, and device files outside /dev that are written as files."""

    allow: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    files: tuple[str, ...] = ()


def device_access(config: HallConfig) -> DeviceAccess:
    """The devices the hall file names, as the unit's sandbox allows them.

    A serial or file device is allowed by its path. A USB-serial adapter (ttyUSBn, ttyACMn, a
    /dev/serial/by-id or /dev/hall name) is also allowed by its driver's class: systemd reads a
    path's device number once at start, and an adapter pulled and plugged back may come back
    under another one, which the controller reconnects to by itself. A `usb` device (a printer
    spoken to by libusb) is reached through /dev/bus/usb, whose nodes change at every plug: its
    class. The sound card of [voice] device: ALSA's class."""
    allow: dict[str, None] = {}
    groups: dict[str, None] = {}
    files: dict[str, None] = {}
    for d in config.hall.devices:
        path = d.port or ""
        if d.transport in ("serial", "file") and path.startswith("/dev/"):
            allow[f"{path} rw"] = None
            if path.startswith("/dev/pts/"):
                allow["char-pts rw"] = None
            elif _USB_SERIAL.match(path):
                allow["char-ttyUSB rw"] = allow["char-ttyACM rw"] = None
            groups["dialout" if d.transport == "serial" else "lp"] = None
        elif d.transport == "file" and path:
            files[path] = None
        elif d.transport == "usb":
            allow["char-usb_device rw"] = None
    if config.voice.enabled and config.voice.device:
        allow["char-alsa rw"] = None
        groups["audio"] = None
    return DeviceAccess(tuple(allow), tuple(groups), tuple(files))


@dataclass(frozen=True)
class Installation:
    """One hall's service: where its pieces are as the installed system sees them."""

    config: PurePosixPath
    data_dir: PurePosixPath
    user: str
    hallctl: PurePosixPath
    host: str = "0.0.0.0"
    port: int = 8000
    public_url: str | None = None
    devices: DeviceAccess = field(default_factory=DeviceAccess)

    @property
    def env_file(self) -> PurePosixPath:
        return self.config.parent / ENV_NAME


def _quote(arg: str) -> str:
    """One argument of an Exec line: '%' is a specifier, spaces and quotes need quoting."""
    arg = arg.replace("%", "%%")
    if re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]+", arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _command(*args: str) -> str:
    return " ".join(_quote(a) for a in args)


def _sandbox(inst: Installation) -> list[str]:
    """The hardening both units share: everything read-only but the data directory."""
    home = any(str(p).startswith(("/home/", "/root/"))
               for p in (inst.hallctl, inst.data_dir, inst.config))
    return [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        f"ReadWritePaths={_quote(str(inst.data_dir))}",
        f"ProtectHome={'read-only' if home else 'yes'}",
        "PrivateTmp=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "ProtectClock=yes",
        "ProtectHostname=yes",
        "RestrictNamespaces=yes",
        "RestrictRealtime=yes",
        "RestrictSUIDSGID=yes",
        "LockPersonality=yes",
        "RemoveIPC=yes",
        # AF_NETLINK: libusb watches for plugged devices through it
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
        "SystemCallArchitectures=native",
        "SystemCallFilter=@system-service",
        "SystemCallErrorNumber=EPERM",
        "UMask=0077",  # the key file and the database: the service's user only
    ]


def service_unit(inst: Installation) -> str:
    """hall-controller.service: `hallctl run` for the hall, as its own user."""
    run = ["run", "--config", str(inst.config), "--data-dir", str(inst.data_dir),
           "--host", inst.host, "--port", str(inst.port)]
    if inst.public_url:
        run += ["--public-url", inst.public_url]
    low_port = inst.port < 1024
    lines = [
        "# Written by `hallctl install`; `hallctl uninstall` removes it.",
        "[Unit]",
        "Description=Hall controller 政务服务中心叫号控制器",
        "Documentation=file:/etc/hall/hall.toml",
        "After=network-online.target time-sync.target",
        "Wants=network-online.target",
        "StartLimitIntervalSec=300",
        "StartLimitBurst=10",
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        f"ExecStart={_command(str(inst.hallctl), *run)}",
        f"User={inst.user}",
        f"Group={inst.user}",
        *([f"SupplementaryGroups={' '.join(inst.devices.groups)}"] if inst.devices.groups else []),
        f"EnvironmentFile=-{inst.env_file}",
        "Environment=PYTHONUNBUFFERED=1",
        "Restart=on-failure",
        "RestartSec=2s",
        # exit 2: a bad hall file or a missing setting, which no restart mends (the log says which)
        "RestartPreventExitStatus=2",
        f"WatchdogSec={WATCHDOG_SECONDS}s",
        "TimeoutStartSec=120s",
        "TimeoutStopSec=30s",
        "KillSignal=SIGTERM",
        f"LimitNOFILE={OPEN_FILES}",
        *_sandbox(inst),
        *(f"ReadWritePaths=-{_quote(f)}" for f in inst.devices.files),
        # /dev: the null devices and the ones the hall file names, nothing else
        "DevicePolicy=closed",
        *(f"DeviceAllow={a}" for a in inst.devices.allow),
        f"CapabilityBoundingSet={'CAP_NET_BIND_SERVICE' if low_port else ''}",
        f"AmbientCapabilities={'CAP_NET_BIND_SERVICE' if low_port else ''}",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ]
    return "\n".join(lines)


def backup_units(inst: Installation, at: str = BACKUP_AT) -> tuple[str, str]:
    """hall-backup.service and hall-backup.timer: `hallctl backup` every night at `at`."""
    backup = _command(str(inst.hallctl), "backup", "--config", str(inst.config),
                      "--data-dir", str(inst.data_dir))
    service = "\n".join([
        "# Written by `hallctl install`; `hallctl uninstall` removes it.",
        "[Unit]",
        "Description=Hall controller nightly backup 叫号控制器夜间备份",
        f"After={SERVICE}",
        "",
        "[Service]",
        "Type=oneshot",
        f"ExecStart={backup}",
        f"User={inst.user}",
        f"Group={inst.user}",
        f"EnvironmentFile=-{inst.env_file}",
        "Nice=10",
        "IOSchedulingClass=idle",
        *_sandbox(inst),
        "DevicePolicy=closed",
        "CapabilityBoundingSet=",
        "",
    ])
    timer = "\n".join([
        "# Written by `hallctl install`; `hallctl uninstall` removes it.",
        "[Unit]",
        "Description=Hall controller nightly backup 叫号控制器夜间备份",
        "",
        "[Timer]",
        f"OnCalendar=*-*-* {at}:00",
        "Persistent=true",  # a PC off at night backs up when it is next switched on
        "RandomizedDelaySec=10min",
        f"Unit={BACKUP_SERVICE}",
        "",
        "[Install]",
        "WantedBy=timers.target",
        "",
    ])
    return service, timer


def sysusers(inst: Installation) -> str:
    return ("# Written by `hallctl install`: the hall controller's own user (systemd-sysusers).\n"
            f'u {inst.user} - "Hall controller" {inst.data_dir} /usr/sbin/nologin\n')


ENV_TEMPLATE = """\
# The hall controller's environment (hall-controller.service and hall-backup.service read it).
# Readable by root only. For example:
# HALL_MQTT_PASSWORD=...      the controller's broker password ([mqtt] password_env)
# HALL_SECRET_KEY=...         the personal-data key, if not secret.key in the data directory
"""


def default_hallctl() -> Path:
    """The hallctl of this installation: beside the running Python (a venv), else on PATH."""
    beside = Path(sys.executable).with_name("hallctl")
    if beside.exists():
        return beside.absolute()
    found = shutil.which("hallctl")
    if found is None:
        raise RuntimeError("cannot find the hallctl program; give its path with --hallctl")
    return Path(found).absolute()


class _Writer:
    """Writes under a root and remembers what it made, for the manifest."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: list[str] = []
        self.dirs: list[str] = []

    def path(self, where: PurePosixPath) -> Path:
        return self.root / str(where).lstrip("/")

    def mkdir(self, where: PurePosixPath, mode: int = 0o755) -> Path:
        missing = [p for p in (where, *where.parents) if str(p) != "/" and not self.path(p).exists()]
        self.path(where).mkdir(parents=True, exist_ok=True, mode=mode)
        self.dirs += [str(p) for p in reversed(missing)]
        return self.path(where)

    def write(self, where: PurePosixPath, text: str, mode: int = 0o644, keep: bool = False) -> None:
        self.mkdir(where.parent)
        target = self.path(where)
        if keep and target.exists():
            return
        tmp = target.with_name(target.name + ".new")
        tmp.write_text(text, encoding="utf-8")
        os.chmod(tmp, mode)
        os.replace(tmp, target)
        self.files.append(str(where))


def _absolute(path: str, what: str) -> PurePosixPath:
    p = PurePosixPath(path)
    if not p.is_absolute() or not re.fullmatch(r"[A-Za-z0-9_@+=:,./-]+", path):
        raise RuntimeError(f"{what} must be an absolute path as the service sees it, without spaces, "
                           f"quotes or %, e.g. /var/lib/hall (found {path!r})")
    return p


def install(config_path: str | Path, data_dir: str, root: str | Path = "/", user: str = "hallctl",
            hallctl: str | Path | None = None, host: str = "0.0.0.0", port: int = 8000,
            public_url: str | None = None) -> list[str]:
    """Install the hall's service under `root`; the paths written (as the system sees them)."""
    if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", user):
        raise RuntimeError(f"--user {user!r}: a user name is up to 32 lower-case letters, digits, '_' or '-'")
    config = load_config(config_path)  # a bad hall file stops the install before anything is written
    root = Path(root)
    real = root.resolve() == Path("/")
    if real and os.geteuid() != 0:
        raise RuntimeError("installing a service needs root: run it with sudo (or give --root DIR)")
    data = _absolute(data_dir, "--data-dir")
    inst = Installation(CONFIG_DIR / CONFIG_NAME, data, user,
                        PurePosixPath(Path(hallctl).absolute() if hallctl else default_hallctl()),
                        host, port, public_url, device_access(config))
    out = _Writer(root)
    wants_before = {w for w in WANTS_DIRS if out.path(w).exists()}
    out.write(inst.config, Path(config_path).read_text(encoding="utf-8"), 0o640)
    holidays = Path(config_path).parent / HOLIDAYS_FILE
    if holidays.exists():
        out.write(CONFIG_DIR / HOLIDAYS_FILE, holidays.read_text(encoding="utf-8"), 0o640)
    out.write(inst.env_file, ENV_TEMPLATE, 0o600, keep=True)
    out.write(SYSUSERS, sysusers(inst))
    out.write(UNIT_DIR / SERVICE, service_unit(inst))
    backup, timer = backup_units(inst)
    out.write(UNIT_DIR / BACKUP_SERVICE, backup)
    out.write(UNIT_DIR / BACKUP_TIMER, timer)
    out.mkdir(data, 0o750)
    _write_manifest(out, inst)  # what is written so far can be uninstalled, should the rest fail
    if real:
        _make_user(out, inst)
    _systemctl(root, "enable", SERVICE, BACKUP_TIMER)
    out.dirs += [str(w) for w in WANTS_DIRS if w not in wants_before and out.path(w).exists()]
    _write_manifest(out, inst)
    return out.files


def _make_user(out: _Writer, inst: Installation) -> None:
    """The service's user, owning the data directory; its group may read the hall file."""
    subprocess.run(["systemd-sysusers", str(out.path(SYSUSERS))], check=True)
    entry = pwd.getpwnam(inst.user)
    # a data directory used before (a first run as root) becomes the service's, all of it
    for folder, _, files in os.walk(out.path(inst.data_dir)):
        for path in (folder, *(os.path.join(folder, f) for f in files)):
            os.chown(path, entry.pw_uid, entry.pw_gid, follow_symlinks=False)
    for name in (CONFIG_NAME, HOLIDAYS_FILE):
        if out.path(CONFIG_DIR / name).exists():
            os.chown(out.path(CONFIG_DIR / name), 0, grp.getgrnam(inst.user).gr_gid)


def _systemctl(root: Path, *args: str) -> None:
    if shutil.which("systemctl") is None:
        raise RuntimeError("systemctl not found: this system does not run systemd")
    where = [] if root.resolve() == Path("/") else [f"--root={root}"]
    if not where:
        subprocess.run(["systemctl", "daemon-reload"], check=False)
    subprocess.run(["systemctl", *where, "--quiet", *args], check=True)


def _write_manifest(out: _Writer, inst: Installation) -> None:
    manifest = out.path(MANIFEST)
    old = json.loads(manifest.read_text(encoding="utf-8")) if manifest.exists() else {}
    files = sorted({*old.get("files", []), *out.files, str(MANIFEST)})
    dirs = list(dict.fromkeys([*old.get("dirs", []), *out.dirs]))
    manifest.write_text(json.dumps({"files": files, "dirs": dirs, "data_dir": str(inst.data_dir),
                                    "units": [SERVICE, BACKUP_SERVICE, BACKUP_TIMER]}, indent=1),
                        encoding="utf-8")


def uninstall(root: str | Path = "/") -> tuple[list[str], str]:
    """Stop and disable the service, remove what install wrote; (the paths removed, the data
    directory, which is kept)."""
    root = Path(root)
    out = _Writer(root)
    manifest = out.path(MANIFEST)
    if not manifest.exists():
        raise RuntimeError(f"nothing to uninstall: no {MANIFEST} under {root}")
    if root.resolve() == Path("/") and os.geteuid() != 0:
        raise RuntimeError("removing a service needs root: run it with sudo (or give --root DIR)")
    listed = json.loads(manifest.read_text(encoding="utf-8"))
    if root.resolve() == Path("/"):
        subprocess.run(["systemctl", "stop", SERVICE, BACKUP_TIMER, BACKUP_SERVICE], check=False)
    _systemctl(root, "disable", SERVICE, BACKUP_TIMER)
    removed = []
    for f in listed["files"]:
        path = out.path(PurePosixPath(f))
        if path.exists() or path.is_symlink():
            path.unlink()
            removed.append(f)
    for d in sorted(listed["dirs"], key=lambda p: p.count("/"), reverse=True):
        path = out.path(PurePosixPath(d))
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    if root.resolve() == Path("/"):
        subprocess.run(["systemctl", "daemon-reload"], check=False)
    return removed, listed["data_dir"]
