"""One error tree: every refusal a person can cause is a `HallError` with a code, a category and,
for too many requests, a real `retry_after`; every codec's protocol error is a `ProtocolError`."""

from __future__ import annotations

import pytest

from controller.backoffice.cases import DeskError
from controller.core.callbacks import CaseError
from controller.core.errors import Category, HallError
from drivers.caller_display.state import DisplayProtocolError
from drivers.code_scanner.codec import ScannerProtocolError
from drivers.counter_keypad.codec import BusProtocolError
from drivers.evaluator_pad import PadProtocolError
from drivers.id_reader.codec import ReaderProtocolError
from drivers.protocol import ProtocolError
from drivers.ticket_printer.codec import PrinterProtocolError


@pytest.mark.parametrize("error, category", [
    (HallError("window_paused"), Category.CONFLICT),
    (CaseError("unknown_case"), Category.NOT_FOUND),
    (DeskError("reviewer_not_you"), Category.FORBIDDEN),
])
def test_each_areas_refusal_is_a_hall_error_with_its_own_codes(error, category):
    assert isinstance(error, HallError)
    assert error.category is category and error.message and error.retry_after is None


def test_an_area_refuses_only_with_its_own_codes():
    with pytest.raises(KeyError):
        CaseError("window_paused")


def test_too_many_requests_carry_when_to_try_again():
    error = HallError("too_many_tickets", retry_after=42)
    assert (error.category, error.retry_after) == (Category.TOO_MANY, 42)


@pytest.mark.parametrize("codec_error", [
    DisplayProtocolError, ScannerProtocolError, BusProtocolError, PadProtocolError,
    ReaderProtocolError, PrinterProtocolError,
])
def test_every_codecs_protocol_error_has_one_base(codec_error):
    assert issubclass(codec_error, ProtocolError)
