"""身份证阅读器: the resident ID card reader (SAM module) at the ticket kiosk.

`codec` turns the reader's frames and card text into values and back;
`IdCardReader` polls one reader over a DeviceLink and reports each card once.
The controller validates ID numbers (GB 11643); the driver only reads them.
"""

from drivers.id_reader.codec import (
    BadFrame, Card, CardBlocks, CardType, Command, CommandDecoder, ReaderProtocolError, ReaderStatus, Reply,
    ReplyDecoder, Request, encode_card, encode_command, encode_read_data, encode_reply, parse_card,
    parse_card_reply, parse_read_data,
)
from drivers.id_reader.driver import IdCardReader

__all__ = [
    "BadFrame", "Card", "CardBlocks", "CardType", "Command", "CommandDecoder", "IdCardReader",
    "ReaderProtocolError", "ReaderStatus", "Reply", "ReplyDecoder", "Request", "encode_card",
    "encode_command", "encode_read_data", "encode_reply", "parse_card", "parse_card_reply",
    "parse_read_data",
]
