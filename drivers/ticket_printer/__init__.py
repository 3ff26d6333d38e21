"""取号小票打印机: the kiosk's ticket printer (ESC/POS, GB18030), its codec and its driver."""

from drivers.ticket_printer.codec import (
    STATUS_QUERY, Cut, PaperStatus, PrinterProtocolError, Printout, PrintoutDecoder, QrCode,
    SizeChange, StatusQuery, TextLine, TicketPrint, decode_printout, encode_paper_status,
    parse_paper_status, render_ticket, wait_text,
)
from drivers.ticket_printer.driver import PaperOut, PrinterUnavailable, PrintResult, TicketPrinter

__all__ = [
    "STATUS_QUERY", "Cut", "PaperOut", "PaperStatus", "PrintResult", "PrinterProtocolError",
    "PrinterUnavailable", "Printout", "PrintoutDecoder", "QrCode", "SizeChange", "StatusQuery",
    "TextLine", "TicketPrint", "TicketPrinter", "decode_printout", "encode_paper_status",
    "parse_paper_status", "render_ticket", "wait_text",
]
