"""`hallctl run --simulate`: a simulated peer for every kiosk device of the hall.

Each simulator opens the other end of a real pty and speaks the device side
of the protocol with the driver's own codec; the controller's drivers are
simply pointed at the pty instead of the configured port. The simulators are
worked from `/sim/...` on the controller's web API (place a card, run the
printer out of paper, read what it printed), which only exists with
--simulate; the page /sim has a button for each. Registered as the `hallctl.simulate`
entry point.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict

from controller.core.hall import Hall
from sim.caller_display import SimulatedBar
from sim.code_scanner import SimulatedScanner
from sim.counter_bus import SimulatedCounterBus
from sim.id_card_reader import SimulatedIdCardReader
from sim.mqtt_devices import SimulatedMqttDisplay, SimulatedTabletKeypad, SimulatedTabletPad
from sim.ticket_printer import PtyPrinter, SimulatedPrinter


PANEL = Path(__file__).with_name("panel.html")
PAGES = {"/sim": "设备模拟（演示）"}  # path -> title, for `hallctl run`'s banner


class _Card(BaseModel):
    model_config = ConfigDict(extra="forbid")
    card: str


class _Code(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str


class _Key(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str
    reason: int | None = None
    minutes: int | None = None
    service_letter: str | None = None
    number: str | None = None


class _Grade(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grade: int


class _Paper(BaseModel):
    model_config = ConfigDict(extra="forbid")
    paper: str


@dataclass
class Simulation:
    """The simulated devices, what the drivers should open instead, and their control routes."""

    substitutes: dict[str, tuple[str, str | None, str | None]] = field(default_factory=dict)
    readers: dict[str, SimulatedIdCardReader] = field(default_factory=dict)
    printers: dict[str, PtyPrinter] = field(default_factory=dict)
    scanners: dict[str, SimulatedScanner] = field(default_factory=dict)
    buses: dict[str, SimulatedCounterBus] = field(default_factory=dict)  # by configured port
    bars: dict[str, SimulatedBar] = field(default_factory=dict)
    keypads: dict[int, tuple[SimulatedCounterBus, int]] = field(default_factory=dict)  # window ->
    pads: dict[int, tuple[SimulatedCounterBus, int]] = field(default_factory=dict)  # window ->
    # the hall's MQTT devices (tablet keypads and pads, MQTT bars, the main display), by id
    mqtt_devices: dict[str, Any] = field(default_factory=dict)
    tablet_keypads: dict[int, SimulatedTabletKeypad] = field(default_factory=dict)  # window ->
    tablet_pads: dict[int, SimulatedTabletPad] = field(default_factory=dict)  # window ->
    router: APIRouter | None = None
    pages: dict[str, str] = field(default_factory=lambda: dict(PAGES))  # path -> title
    closed: bool = False

    def close(self) -> None:
        """Unplug the serial devices and stop the MQTT ones (once; later calls do nothing)."""
        if self.closed:
            return
        self.closed = True
        for device in (*self.readers.values(), *self.printers.values(), *self.scanners.values(),
                       *self.buses.values(), *self.bars.values()):
            device.unplug()
        # Side by side: a device whose broker has gone waits out its reconnect delay (up to half
        # a second) before it notices the stop, and one after the other the demo's devices kept
        # Ctrl+C waiting 15 s.
        stopping = [threading.Thread(target=device.stop, name=f"stop-{name}")
                    for name, device in self.mqtt_devices.items()]
        for thread in stopping:
            thread.start()
        for thread in stopping:
            thread.join()


def attach(hall: Hall, workdir: Path, mqtt_devices: bool = True,
           broker: tuple[str, int] = ("127.0.0.1", 1883)) -> Simulation:
    """Start a simulator for each serial device the hall configures (ticket printers, ID-card
    readers, scanners, keypads, pads, window bars) and, with `mqtt_devices`, for each MQTT
    device on the hall's broker at `broker` (host, port: the embedded one unless [mqtt]
    names another)."""
    workdir.mkdir(parents=True, exist_ok=True)
    sim = Simulation()
    for device in hall.devices:
        path = str(workdir / f"{device.id}.tty")
        if device.kind == "ticket_printer":
            sim.printers[device.id] = PtyPrinter(SimulatedPrinter(device.id), link=path).start()
        elif device.kind == "id_reader":
            sim.readers[device.id] = SimulatedIdCardReader(link=path).start()
        elif device.kind == "code_scanner":
            sim.scanners[device.id] = SimulatedScanner(link=path).start()
        elif device.kind == "caller_display" and device.transport == "serial":
            # each simulated bar has a pty of its own, so bars sharing a port get a link each
            options = dict(device.options)
            sim.bars[device.id] = SimulatedBar(options.get("codec", "generic"),
                                               int(options.get("address", device.window)),
                                               link=path, font=options.get("charset")).start()
        elif device.kind in ("counter_keypad", "evaluator_pad") and device.transport == "serial":
            # devices sharing an RS-485 port share one simulated bus
            bus_path = str(workdir / f"bus{len(sim.buses)}.tty")
            bus = sim.buses.get(device.port)
            if bus is None:
                bus = sim.buses[device.port] = SimulatedCounterBus(link=bus_path).start()
            path = bus.path
            where = (bus, int(dict(device.options).get("address", device.window)))
            (sim.keypads if device.kind == "counter_keypad" else sim.pads)[device.window] = where
        else:
            continue
        sim.substitutes[device.id] = ("serial", path, None)
    if mqtt_devices:
        _attach_mqtt(hall, sim, broker)
    sim.router = _routes(sim)
    return sim


def _attach_mqtt(hall: Hall, sim: Simulation, broker: tuple[str, int]) -> None:
    """Tablet keypads and pads, MQTT bars and the main hall display as real MQTT clients.
    They connect (and reconnect) by themselves: the embedded broker starts after them."""
    host, port = broker
    kinds = {"counter_keypad": SimulatedTabletKeypad, "evaluator_pad": SimulatedTabletPad,
             "caller_display": SimulatedMqttDisplay, "hall_display": SimulatedMqttDisplay}
    for device in hall.devices:
        if device.transport == "mqtt" and device.topic and device.kind in kinds:
            simulated = kinds[device.kind](f"sim-{device.id}", host, port, device.topic).start()
            sim.mqtt_devices[device.id] = simulated
            if device.kind == "counter_keypad":
                sim.tablet_keypads[device.window] = simulated
            elif device.kind == "evaluator_pad":
                sim.tablet_pads[device.window] = simulated


def _routes(sim: Simulation) -> APIRouter:
    r = APIRouter(prefix="/sim", tags=["simulator"])
    _panel_routes(r, sim)
    _kiosk_routes(r, sim)
    _window_routes(r, sim)
    _display_and_printer_routes(r, sim)
    return r


def _panel_routes(r: APIRouter, sim: Simulation) -> None:
    """The page a demo's visitor works the devices from (设备模拟, sim/panel.html: buttons for
    the routes below), and what it lists: every simulated device and the cards in the drawer."""

    @r.get("", include_in_schema=False)
    async def panel() -> FileResponse:
        return FileResponse(PANEL, headers={"Cache-Control": "no-store"})

    @r.get("/devices", summary="The simulated devices and the cards in the drawer")
    async def overview() -> dict[str, Any]:
        return {"id_readers": {d: [{"card": key, "name": card.card.name, "reply": card.reply}
                                   for key, card in reader.cards.items()]
                               for d, reader in sim.readers.items()},
                "code_scanners": sorted(sim.scanners),
                "printers": {d: p.paper.name.lower() for d, p in sim.printers.items()},
                "keypads": sorted({*sim.keypads, *sim.tablet_keypads}),
                "pads": sorted({*sim.pads, *sim.tablet_pads})}


def _kiosk_routes(r: APIRouter, sim: Simulation) -> None:
    """The citizen's side of the kiosk: a card on the reader, a code shown to the scanner."""

    def reader(device: str) -> SimulatedIdCardReader:
        if device not in sim.readers:
            raise HTTPException(404, f"no simulated ID-card reader {device}")
        return sim.readers[device]

    @r.post("/id-readers/{device}/place", summary="Put a card on the reader")
    async def place(device: str, body: _Card) -> dict[str, Any]:
        sim_reader = reader(device)
        if body.card not in sim_reader.cards:
            raise HTTPException(404, f"no card {body.card}; cards: {', '.join(sorted(sim_reader.cards))}")
        sim_reader.place(body.card)
        return {"ok": True}

    @r.post("/id-readers/{device}/remove", summary="Take the card off the reader")
    async def remove(device: str) -> dict[str, Any]:
        reader(device).remove()
        return {"ok": True}

    @r.post("/scanners/{device}/scan", summary="Show a code to the scanner")
    async def scan(device: str, body: _Code) -> dict[str, Any]:
        if device not in sim.scanners:
            raise HTTPException(404, f"no simulated code scanner {device}")
        sim.scanners[device].scan(body.code)
        return {"ok": True}


def _window_routes(r: APIRouter, sim: Simulation) -> None:
    """A member of staff at the keypad, a citizen at the evaluation pad."""

    @r.post("/keypads/{window}/press", summary="Press a key on a window's keypad")
    async def press(window: int, body: _Key) -> dict[str, Any]:
        data = {k: v for k, v in body.model_dump().items() if k != "key" and v is not None}
        if window in sim.tablet_keypads:
            sim.tablet_keypads[window].press(body.key, **data)
            return {"ok": True}
        if window not in sim.keypads:
            raise HTTPException(404, f"no simulated keypad at window {window}")
        bus, address = sim.keypads[window]
        bus.press(address, body.key, **data)
        return {"ok": True}

    @r.post("/pads/{window}/grade", summary="Press a grade on a window's pad: 1 非常满意 … 5 非常不满意")
    async def grade(window: int, body: _Grade) -> dict[str, Any]:
        if not 1 <= body.grade <= 5:
            raise HTTPException(422, "grade is 1 to 5 (1 非常满意 … 5 非常不满意)")
        if window in sim.tablet_pads:
            sim.tablet_pads[window].grade(body.grade)
            return {"ok": True}
        if window not in sim.pads:
            raise HTTPException(404, f"no simulated evaluation pad at window {window}")
        bus, address = sim.pads[window]
        bus.grade(address, body.grade)
        return {"ok": True}


def _display_and_printer_routes(r: APIRouter, sim: Simulation) -> None:
    """What the displays show and the printers printed, and the paper in a printer."""

    def printer(device: str) -> PtyPrinter:
        if device not in sim.printers:
            raise HTTPException(404, f"no simulated printer {device}")
        return sim.printers[device]

    @r.get("/displays", summary="What every simulated display shows: a serial bar its lines, an "
                                 "MQTT bar or the main display the last JSON it was sent")
    async def displays() -> dict[str, Any]:
        shown: dict[str, Any] = {d: bar.showing for d, bar in sim.bars.items()}
        shown.update({d: device.showing for d, device in sim.mqtt_devices.items()
                      if isinstance(device, SimulatedMqttDisplay)})
        return shown

    @r.post("/printers/{device}/paper", summary="Set the paper: ok, near_end or out")
    async def paper(device: str, body: _Paper) -> dict[str, Any]:
        if body.paper not in ("ok", "near_end", "out"):
            raise HTTPException(422, "paper is ok, near_end or out")
        printer(device).paper = body.paper
        return {"ok": True}

    @r.get("/printers/{device}/tickets", summary="What the printer printed, decoded")
    async def printed(device: str, last: int = 10) -> list[dict[str, Any]]:
        return [{"lines": t.lines, "qr": t.qr} for t in printer(device).tickets[-last:]]
