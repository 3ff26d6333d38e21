"""`districtctl`: the district centre (区县政务服务管理办公室) from the command line.

    districtctl run --database DSN --broker HOST:PORT    consumers and the web API
    districtctl consume --database DSN --broker HOST:PORT --name 2   one more consumer
    districtctl deliver --database DSN --province URL --region HALL_ID=CODE ...
                                                         好差评 to the provincial platform
    districtctl local                                    a district on this machine: its own
                                                         PostgreSQL and Mosquitto under var/district
    districtctl bundle HALL FILE.json --by NAME          a new version of the hall's configuration
    districtctl disable-staff HALL STAFF --by NAME       停用: the account refused at its hall at once
    (both through a running centre's API, --centre http://127.0.0.1:8100)
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from center.consumer import Consumer


def _host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT such as 127.0.0.1:1883, found {value!r}")
    return host, int(port)


def _consumers(args: argparse.Namespace, count: int, first: int = 1) -> list[Consumer]:
    host, port = args.broker
    password = os.environ.get(args.password_env) if args.password_env else None
    return [Consumer(args.database, host, port, name=f"{args.name}-{i}" if count > 1 else args.name,
                     username=args.username, password=password).start()
            for i in range(first, first + count)]


def _serve(args: argparse.Namespace, consumers: list[Consumer]) -> int:
    import uvicorn

    from center.api import create_app
    from center.bundles import BundleDesk

    host, port = args.broker
    password = os.environ.get(args.password_env) if args.password_env else None
    desk = BundleDesk(args.database, host, port, args.name, args.username, password).start()

    print(f"district centre: http://{args.host}:{args.port}/api/v1/halls "
          f"(broker {args.broker[0]}:{args.broker[1]}, {len(consumers)} consumer(s))", flush=True)
    # uvicorn stops on SIGTERM and raises it again once stopped: end by an exception, so the
    # consumers (and `local`'s database and broker) are stopped on the way out
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        uvicorn.run(create_app(args.database, desk), host=args.host, port=args.port, log_level="warning")
    finally:
        desk.stop()
        for c in consumers:
            c.stop()
    return 0


def _centre_post(args: argparse.Namespace, path: str, body: dict) -> int:
    import httpx

    try:
        r = httpx.post(f"{args.centre.rstrip('/')}{path}", json=body, timeout=30)
    except httpx.TransportError as e:
        print(f"districtctl: the centre at {args.centre} does not answer: {e}", file=sys.stderr)
        return 2
    if r.status_code >= 400:
        print(f"districtctl: {r.json().get('message', r.text)}", file=sys.stderr)
        return 1
    bundle = r.json()
    print(f"hall {bundle['hall']}: bundle v{bundle['version']} published", flush=True)
    return 0


def cmd_bundle(args: argparse.Namespace) -> int:
    import json

    try:
        content = json.loads(Path(args.file).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        print(f"districtctl: {args.file}: {e}", file=sys.stderr)
        return 2
    return _centre_post(args, f"/api/v1/halls/{args.hall}/bundles", {"content": content, "created_by": args.by})


def cmd_disable_staff(args: argparse.Namespace) -> int:
    return _centre_post(args, f"/api/v1/halls/{args.hall}/staff/{args.staff}/disable", {"created_by": args.by})


def cmd_run(args: argparse.Namespace) -> int:
    return _serve(args, _consumers(args, args.consumers))


def cmd_consume(args: argparse.Namespace) -> int:
    consumers = _consumers(args, 1)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    for c in consumers:
        c.stop()
    return 0


def _region(value: str) -> tuple[str, str]:
    hall, _, code = value.partition("=")
    if not hall or not (len(code) == 6 and code.isdigit()):
        raise argparse.ArgumentTypeError(f"expected HALL_ID=CODE with a 6-digit region code, found {value!r}")
    return hall, code


def cmd_deliver(args: argparse.Namespace) -> int:
    from center import province, store

    if args.retry_failed:
        with store.connect(args.database) as conn:
            store.migrate(conn)
            print(f"{province.retry_failed(conn)} failed deliveries queued again", flush=True)
    deliverer = province.Deliverer(args.database, args.province, dict(args.region), workers=args.workers,
                                   timeout=args.timeout, max_attempts=args.max_attempts,
                                   backoff_seconds=args.backoff, max_backoff_seconds=args.max_backoff).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    deliverer.stop()
    return 0


def cmd_local(args: argparse.Namespace) -> int:
    from center.local import LocalPostgres

    directory = Path(args.dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    pg = LocalPostgres(directory / "pg", port=args.pg_port).start()
    conf = directory / "mosquitto.conf"
    host, port = args.broker
    kept = directory / "broker"  # the broker's sessions and retained acks, across restarts
    kept.mkdir(exist_ok=True)
    if os.geteuid() == 0:  # as root Mosquitto drops to the user mosquitto before writing it
        import pwd

        user = pwd.getpwnam("mosquitto")
        os.chown(kept, user.pw_uid, user.pw_gid)
    conf.write_text(f"listener {port} {host}\nallow_anonymous true\npersistence true\n"
                    f"persistence_location {kept}/\nlog_type error\nlog_type warning\n")
    broker = subprocess.Popen(["/usr/sbin/mosquitto", "-c", str(conf)], stdin=subprocess.DEVNULL)
    args.database = pg.dsn
    print(f"district database {pg.dsn}, broker {host}:{port} (a hall ships to it with "
          f"`make demo DISTRICT={host}:{port}`)", flush=True)
    try:
        return _serve(args, _consumers(args, args.consumers))
    finally:
        broker.terminate()
        broker.wait(10)
        pg.stop()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="districtctl", description="区县政务服务管理办公室: the district centre")
    sub = p.add_subparsers(dest="command", required=True)

    def common(s: argparse.ArgumentParser, database: bool = True) -> None:
        if database:
            s.add_argument("--database", required=True, help="PostgreSQL, e.g. postgresql://centre@db/district")
        s.add_argument("--broker", type=_host_port, default=("127.0.0.1", 1883),
                       help="the district's MQTT broker, HOST:PORT")
        s.add_argument("--username", help="the consumer's broker account")
        s.add_argument("--password-env", help="the environment variable holding its password")
        s.add_argument("--name", default="1", help="this consumer's name (its MQTT client id is centre-NAME)")

    def web(s: argparse.ArgumentParser) -> None:
        s.add_argument("--host", default="127.0.0.1")
        s.add_argument("--port", type=int, default=8100)
        s.add_argument("--consumers", type=int, default=1, help="consumers in this process")

    run = sub.add_parser("run", help="consumers and the web API")
    common(run)
    web(run)
    run.set_defaults(func=cmd_run)
    consume = sub.add_parser("consume", help="one more consumer on the shared subscription")
    common(consume)
    consume.set_defaults(func=cmd_consume)
    deliver = sub.add_parser("deliver", help="好差评 to the provincial platform")
    deliver.add_argument("--database", required=True, help="PostgreSQL, e.g. postgresql://centre@db/district")
    deliver.add_argument("--province", required=True, help="the platform's URL, e.g. https://hcp.example/evaluations")
    deliver.add_argument("--region", type=_region, action="append", default=[],
                         help="a hall's 行政区划代码, HALL_ID=CODE (again for each hall; a hall without one waits)")
    deliver.add_argument("--workers", type=int, default=2, help="delivery threads in this process")
    deliver.add_argument("--timeout", type=float, default=5.0, help="seconds a request may take")
    deliver.add_argument("--max-attempts", type=int, default=20, help="then the delivery is failed")
    deliver.add_argument("--backoff", type=float, default=1.0, help="seconds before the first retry (doubling)")
    deliver.add_argument("--max-backoff", type=float, default=300.0, help="seconds between retries at most")
    deliver.add_argument("--retry-failed", action="store_true", help="queue the failed deliveries again first")
    deliver.set_defaults(func=cmd_deliver)
    local = sub.add_parser("local", help="a district on this machine: PostgreSQL and Mosquitto of its own")
    common(local, database=False)
    web(local)
    local.add_argument("--dir", default="var/district")
    local.add_argument("--pg-port", type=int, default=None)
    local.set_defaults(func=cmd_local, broker=("127.0.0.1", 18840))

    def through_api(s: argparse.ArgumentParser) -> None:
        s.add_argument("hall", help="the hall's id in the district, e.g. 500101-main")
        s.add_argument("--by", required=True, help="who publishes it (kept with the version)")
        s.add_argument("--centre", default="http://127.0.0.1:8100", help="the running centre's API")

    bundle = sub.add_parser("bundle", help="publish a new version of a hall's configuration bundle")
    through_api(bundle)
    bundle.add_argument("file", help="JSON: the hall file's sections (services, windows, staff, calendar, "
                        "open_days, closed_days) and disabled_staff")
    bundle.set_defaults(func=cmd_bundle)
    disable = sub.add_parser("disable-staff", help="停用: a staff account refused at its hall at once")
    through_api(disable)
    disable.add_argument("staff", help="the staff id (工号)")
    disable.set_defaults(func=cmd_disable_staff)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
