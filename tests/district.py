"""The district centre's tests' parts: a centre's API on a loopback port, the halls that ship to
it (the hall-day simulator's town mornings, served halls), and how to compare what it holds with
a hall's own log."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn

from center.api import create_app
from controller.assembly import open_hall
from controller.config.settings import FederationSettings
from controller.federation.shipper import Shipper
from controller.store.outbox import Outbox
from sim.hallday import HallDay
from sim.scenario import load_scenario
from tests.halls import small_morning
from tests.server import REPO, free_port, wait_for
from vocabulary.district import Batch

# A morning of a small town hall (便民服务中心), as the hall-day simulator's tests use it.


def link(hall_id: str, broker, **kw) -> FederationSettings:
    """A hall's [federation] for the test's broker; quick heartbeats and resends."""
    return FederationSettings(hall_id, broker.host, broker.port,
                              **{"heartbeat_seconds": 0.5, "resend_seconds": 3.0, **kw})


@contextmanager
def centre_api(dsn: str, bundles=None):
    """The centre's web API on a free loopback port (uvicorn, as `districtctl run` serves it);
    `bundles`: its bundle desk (center.bundles.BundleDesk), for the configuration routes."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(dsn, bundles), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 10)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(10)


def held(api: httpx.Client, hall_id: str) -> list[dict]:
    """Every event of the hall the centre holds, through its API, page by page."""
    out: list[dict] = []
    after = 0
    while True:
        page = api.get(f"/api/v1/halls/{hall_id}/events", params={"after": after, "limit": 200}).json()
        if not page["events"]:
            return out
        out += page["events"]
        after = page["next_after"]


def hall_of(api: httpx.Client, hall_id: str) -> dict:
    return next((h for h in api.get("/api/v1/halls").json()["halls"] if h["hall_id"] == hall_id), {})


def hall_log(db: Path) -> list[dict]:
    outbox = Outbox(db)
    try:
        return outbox.after(0, 10**7)
    finally:
        outbox.close()


def assert_same_log(api: httpx.Client, hall_id: str, db: Path) -> None:
    """What the centre holds of the hall is the hall's log up to the last event it holds: every
    event, once, in order, as the hall has it (a running hall may have written more since)."""
    theirs = held(api, hall_id)
    assert theirs == [e for e in hall_log(db) if e["id"] <= theirs[-1]["id"]]


def caught_up(api: httpx.Client, hall_id: str, db: Path) -> bool:
    last = hall_log(db)[-1]["id"]
    return hall_of(api, hall_id).get("last_event_id") == last


def town_halls(tmp_path: Path, broker, **settings) -> dict[str, tuple[HallDay, Shipper]]:
    """Two town halls of the hall-day simulator, each with its shipper started."""
    halls = {}
    for n, seed in (("town-1", 7), ("town-2", 11)):
        scenario_path = tmp_path / f"{n}.toml"
        scenario_path.write_text(small_morning(n, seed, "town-morning"), encoding="utf-8")
        day = HallDay(load_scenario(scenario_path), data_dir=tmp_path / n)
        ctrl, _ = open_hall(day.hall, tmp_path / n, day.clock, durable=False)  # the hall's database, made
        ctrl.store.close()
        shipper = Shipper(link(n, broker, **settings), tmp_path / n / "hall.sqlite3", tmp_path / n,
                          day.clock).start()
        halls[n] = (day, shipper)
    return halls


def run_mornings(halls: dict[str, tuple[HallDay, Shipper]]) -> None:
    records = {}
    days = [threading.Thread(target=lambda n=n, d=d: records.update({n: d.run()})) for n, (d, _) in halls.items()]
    for t in days:
        t.start()
    for t in days:
        t.join(120)
    assert records.keys() == halls.keys()  # each morning ran to its end


def serve_a_while(hall, tickets: int, pause: bool = False) -> None:
    """Citizens take `tickets` tickets; windows 1 and 2 call and finish some; window 2 pauses."""
    with hall.client() as api:
        s1, s2 = hall.login("s1", 1), hall.login("s2", 2)
        for i in range(tickets):
            r = api.post("/api/v1/tickets", json={"service": "AB"[i % 2]})
            assert r.status_code == 201, r.text
            if i % 3 == 2:
                for staff, window in ((s1, 1), (s2, 2)):
                    if api.post(f"/api/v1/windows/{window}/call", headers=staff).status_code == 200:
                        hall.clock.advance(minutes=1)
                        assert api.post(f"/api/v1/windows/{window}/finish", headers=staff).status_code == 200
        if pause:
            assert api.post("/api/v1/windows/2/pause", headers=s2,
                            json={"reason": "去后台复印", "minutes": 10}).status_code == 200


def batch(hall: str, after: int, ids: list[int]) -> Batch:
    return Batch(hall, after, ids[-1] if ids else after, tuple(
        {"id": i, "kind": "ticket_issued", "at": f"2026-11-23T09:{i:02d}:00+08:00", "window": None,
         "ticket": f"20261123-A{i:03d}", "data": {"service": "A"}} for i in ids))


PHONE = "13800138000"


def id_number(n: int) -> str:
    """A resident ID number (GB 11643, its check digit right) born 1949-12-31, the n-th of the day."""
    body = f"110105194912310{n:02d}"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]


@contextmanager
def districtctl_run(postgres, broker):
    """`districtctl run` as a child process, as a district runs it; its API's client."""
    port = free_port()
    log = open(Path(postgres.directory) / "districtctl.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "center.cli", "run", "--database", postgres.dsn,
         "--broker", f"{broker.host}:{broker.port}", "--port", str(port)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=log, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as api:
            def up() -> bool:
                assert proc.poll() is None, Path(log.name).read_text()
                try:
                    return api.get("/api/v1/halls").status_code == 200
                except httpx.TransportError:
                    return False
            wait_for(up, 30)
            yield api
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()


def tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A district CA and the broker's certificate for 127.0.0.1 signed by it: (ca, cert, key)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    now = dt.datetime.now(dt.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("区县 district CA")).issuer_name(name("区县 district CA"))
          .public_key(ca_key.public_key()).serial_number(1).not_valid_before(now - dt.timedelta(hours=1))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(name("district broker")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(2).not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = directory / "ca.pem", directory / "broker.pem", directory / "broker.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths
