"""扫码器: the serial code scanner at the entrance kiosk (QR appointment codes, ID-number barcodes).

`codec` splits the scanner's lines into scans and tells an ID number from an
appointment code; `CodeScanner` listens to one scanner over a DeviceLink.
Keyboard-wedge (USB HID) scanners type into the kiosk page and need no driver.
The controller validates ID numbers (GB 11643); the driver only reads them.
"""

from drivers.code_scanner.codec import (
    MAX_LENGTH, Scan, ScanDecoder, ScanKind, ScannerProtocolError, classify, encode_scan,
)
from drivers.code_scanner.driver import CodeScanner, ScanListener

__all__ = [
    "MAX_LENGTH", "CodeScanner", "Scan", "ScanDecoder", "ScanKind", "ScanListener", "ScannerProtocolError",
    "classify", "encode_scan",
]
