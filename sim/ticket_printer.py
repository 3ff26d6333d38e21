"""A simulated ticket printer: decodes what it receives with the driver's codec and answers DLE EOT.

`SimulatedPrinter` is the printer itself (paper roll, printed tickets);
`PtyPrinter` puts it on a pty like a serial printer, `TcpPrinter` on a TCP
port like a port-9100 network printer. Printers of a simulated hall are
described in `sim/printers.toml`.
"""

from __future__ import annotations

import socket
import threading
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from drivers.ticket_printer.codec import (
    Cut, PaperStatus, Printout, PrintoutDecoder, QrCode, SizeChange, StatusQuery, TextLine,
    encode_paper_status,
)
from sim.pty_device import PtyDevice

PRINTERS_FILE = Path(__file__).with_name("printers.toml")


def paper_from(value: PaperStatus | str) -> PaperStatus:
    """"ok", "near_end", "out" (as in printers.toml) or a PaperStatus."""
    return value if isinstance(value, PaperStatus) else PaperStatus[value.upper()]


@dataclass
class PrintedTicket:
    """What came out between two cuts."""

    lines: list[str] = field(default_factory=list)
    qr: list[str] = field(default_factory=list)
    sizes: list[tuple[int, int]] = field(default_factory=list)
    items: list[Printout] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


class SimulatedPrinter:
    """The printer's behaviour, whatever line it is on. Thread-safe."""

    def __init__(self, name: str = "printer", paper: PaperStatus | str = PaperStatus.OK) -> None:
        self.name = name
        self._paper = paper_from(paper)
        self._decoder = PrintoutDecoder()
        self._lock = threading.Condition()
        self._bytes_left: int | None = None
        self._then = PaperStatus.OUT
        self.tickets: list[PrintedTicket] = []
        self.pending = PrintedTicket()  # printed since the last cut
        self.log: list[Printout] = []  # everything decoded, printed or not
        self.discarded = 0  # bytes received while out of paper

    @property
    def paper(self) -> PaperStatus:
        return self._paper

    @paper.setter
    def paper(self, value: PaperStatus | str) -> None:
        with self._lock:
            new = paper_from(value)
            if self._paper is PaperStatus.OUT and new is not PaperStatus.OUT:
                self.pending = PrintedTicket()  # the half-printed slip is torn off with the old roll
            self._paper = new
            self._bytes_left = None

    def paper_after(self, n_bytes: int, then: PaperStatus | str = PaperStatus.OUT) -> None:
        """The roll runs out (or to `then`) after `n_bytes` more bytes of print data."""
        with self._lock:
            self._bytes_left = n_bytes
            self._then = paper_from(then)

    def receive(self, data: bytes) -> bytes:
        """Bytes from the host; returns the printer's answer (status replies)."""
        with self._lock:
            reply = bytearray()
            if self._bytes_left is not None and self._bytes_left < len(data):
                head, data = data[:self._bytes_left], data[self._bytes_left:]
                reply += self._take(head)
                self._paper, self._bytes_left = self._then, None
            elif self._bytes_left is not None:
                self._bytes_left -= len(data)
            reply += self._take(data)
            self._lock.notify_all()
            return bytes(reply)

    def _take(self, data: bytes) -> bytes:
        reply = bytearray()
        out_of_paper = self._paper is PaperStatus.OUT
        items = self._decoder.feed(data)
        if out_of_paper:
            self.discarded += len(data)
        for item in items:
            self.log.append(item)
            if isinstance(item, StatusQuery):
                reply += self._answer(item.kind)
            elif not out_of_paper:
                self._print(item)
        return bytes(reply)

    def _answer(self, kind: int) -> bytes:
        out = self._paper is PaperStatus.OUT
        if kind == 4:
            return encode_paper_status(self._paper)
        if kind == 1:  # printer status: bit 3 offline
            return bytes([0x1A if out else 0x12])
        if kind == 2:  # offline cause: bit 5 paper end stop
            return bytes([0x32 if out else 0x12])
        return bytes([0x12])

    def _print(self, item: Printout) -> None:
        t = self.pending
        t.items.append(item)
        if isinstance(item, TextLine):
            t.lines.append(item.text)
        elif isinstance(item, QrCode):
            t.qr.append(item.content)
        elif isinstance(item, SizeChange):
            t.sizes.append((item.width, item.height))
        elif isinstance(item, Cut):
            self.tickets.append(t)
            self.pending = PrintedTicket()

    def wait_for_tickets(self, n: int, timeout: float = 2.0) -> bool:
        """True once `n` tickets have been cut."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self.tickets) >= n, timeout)


class _Front:
    """Delegates the printer's state to `self.printer`, so a test reads `sim.tickets`."""

    printer: SimulatedPrinter

    @property
    def tickets(self) -> list[PrintedTicket]:
        return self.printer.tickets

    @property
    def pending(self) -> PrintedTicket:
        return self.printer.pending

    @property
    def log(self) -> list[Printout]:
        return self.printer.log

    @property
    def paper(self) -> PaperStatus:
        return self.printer.paper

    @paper.setter
    def paper(self, value: PaperStatus | str) -> None:
        self.printer.paper = value

    def paper_after(self, n_bytes: int, then: PaperStatus | str = PaperStatus.OUT) -> None:
        self.printer.paper_after(n_bytes, then)


class PtyPrinter(_Front, PtyDevice):
    """A serial ticket printer: open `path` with SerialTransport."""

    def __init__(self, printer: SimulatedPrinter | None = None, link: str | None = None) -> None:
        PtyDevice.__init__(self, link)
        self.printer = printer or SimulatedPrinter()

    def handle(self, data: bytes) -> None:
        reply = self.printer.receive(data)
        if reply:
            self.send(reply)


class TcpPrinter(_Front):
    """A network ticket printer on 127.0.0.1 (port 0: any free port, kept across unplug/plug)."""

    def __init__(self, printer: SimulatedPrinter | None = None, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.printer = printer or SimulatedPrinter()
        self.host, self.port = host, port
        self._server: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._guard = threading.Lock()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> "TcpPrinter":
        self.plug()
        return self

    def plug(self) -> str:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((self.host, self.port))
        server.listen()
        self.port = server.getsockname()[1]
        self._server = server
        threading.Thread(target=self._accept, args=(server,), name=f"sim:{self.address}",
                         daemon=True).start()
        return self.address

    def unplug(self) -> None:
        """The cable is pulled: the listener and every connection close."""
        with self._guard:
            server, conns = self._server, self._conns
            self._server, self._conns = None, []
        for s in [server, *conns]:
            if s is not None:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    stop = unplug

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with self._guard:
                if self._server is not server:
                    conn.close()
                    return
                self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        while True:
            try:
                data = conn.recv(4096)
                if not data:
                    break
                reply = self.printer.receive(data)
                if reply:
                    conn.sendall(reply)
            except OSError:
                break
        conn.close()

    def __enter__(self) -> "TcpPrinter":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.unplug()


@dataclass(frozen=True)
class PrinterSpec:
    """One simulated printer as `printers.toml` describes it."""

    name: str
    transport: str = "pty"  # or "tcp"
    paper: str = "ok"
    port: int = 0  # tcp only; 0 picks a free port

    def start(self) -> PtyPrinter | TcpPrinter:
        printer = SimulatedPrinter(self.name, self.paper)
        if self.transport == "tcp":
            return TcpPrinter(printer, port=self.port).start()
        if self.transport == "pty":
            return PtyPrinter(printer).start()  # type: ignore[return-value]
        raise ValueError(f"{self.name}: no simulated transport {self.transport!r}")


def load_printers(path: Path = PRINTERS_FILE) -> list[PrinterSpec]:
    """The `[[printer]]` tables of a printers file."""
    with open(path, "rb") as f:
        return [PrinterSpec(**p) for p in tomllib.load(f).get("printer", [])]


__all__ = ["PrintedTicket", "PrinterSpec", "PtyPrinter", "SimulatedPrinter", "TcpPrinter",
           "load_printers", "paper_from"]
