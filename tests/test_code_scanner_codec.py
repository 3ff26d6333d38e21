"""The code scanner's codec: lines in, scans out, whatever the line carries and however it is chunked."""

from __future__ import annotations

import logging
import time
import unicodedata

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from drivers.code_scanner.codec import (
    MAX_LENGTH, Scan, ScanDecoder, ScanKind, ScannerProtocolError, classify, encode_scan,
)

ELDER = "11010119500307097X"

CLASSIFY = [
    (ELDER, ScanKind.ID_NUMBER),
    ("11010119500307097x", ScanKind.ID_NUMBER),  # a lower-case x is still the shape
    ("110101195003070971", ScanKind.ID_NUMBER),  # wrong check digit: the controller refuses it
    ("11010119500307097", ScanKind.OTHER),  # 17 characters
    ("11010119500307097X1", ScanKind.OTHER),  # 19
    ("1101011950030709XX", ScanKind.OTHER),
    ("１１０１０１１９５００３０７０９７X", ScanKind.OTHER),  # full-width digits
    ("11010119500307097X\n", ScanKind.OTHER),
    ("APT-7F3A9C21D0", ScanKind.APPOINTMENT),
    ("APT-ABCD", ScanKind.APPOINTMENT),
    ("APT-" + "9" * 32, ScanKind.APPOINTMENT),
    ("APT-ABC", ScanKind.OTHER),  # 3 after the dash
    ("APT-" + "9" * 33, ScanKind.OTHER),
    ("apt-7F3A9C21D0", ScanKind.OTHER),
    ("APT-7f3a9c21d0", ScanKind.OTHER),
    ("APT-7F3A-9C21", ScanKind.OTHER),
    (" APT-7F3A9C21D0", ScanKind.OTHER),
    ("https://zwfw.example.gov.cn/q?c=APT-7F3A9C21D0", ScanKind.OTHER),
    ("6901234567892", ScanKind.OTHER),  # an EAN-13 off a product
    ("", ScanKind.OTHER),
]


@pytest.mark.parametrize("text, kind", CLASSIFY)
def test_classify(text, kind):
    assert classify(text) is kind
    if text:
        assert Scan(text).kind is kind


def decode(data: bytes, **framing) -> list[Scan]:
    return ScanDecoder(**framing).feed(data)


def test_cr_or_lf_or_cr_lf_ends_a_line_and_a_blank_line_is_no_scan():
    assert decode(b"A1\rA2\nA3\r\nA4\n\r\r\n\n") == [Scan("A1"), Scan("A2"), Scan("A3"), Scan("A4")]


def test_a_code_without_its_line_end_is_not_a_scan_yet():
    decoder = ScanDecoder()
    assert decoder.feed(ELDER.encode()) == [] and decoder.pending == 18
    assert decoder.feed(b"\r") == [Scan(ELDER)]
    assert decoder.feed(b"\n") == [] and decoder.pending == 0


def test_stx_etx_framing_is_taken_off():
    assert decode(b"\x02APT-7F3A9C21D0\x03\r\n", prefix=b"\x02", suffix=b"\x03") == [Scan("APT-7F3A9C21D0")]


def test_a_suffix_that_is_also_in_the_code_is_taken_off_once():
    assert decode(b"ab;;\r", suffix=b";") == [Scan("ab;")]


def test_noise_before_the_prefix_is_dropped_and_the_scan_kept(caplog):
    caplog.set_level(logging.WARNING, "drivers.code_scanner.codec")
    decoder = ScanDecoder(prefix=b"\x02", suffix=b"\x03")
    assert decoder.feed(b"\x00\xff\x02\x13\x02" + ELDER.encode() + b"\x03\r\n") == [Scan(ELDER)]
    assert caplog.messages == ["code scanner: dropped 4 bytes: noise before the prefix"]
    assert ELDER not in caplog.text


DROPPED = [
    (b"\x02APT-ABCD\r\n", dict(prefix=b"\x02", suffix=b"\x03"), "no suffix b'\\x03'"),
    (b"APT-ABCD\x03\r\n", dict(prefix=b"\x02", suffix=b"\x03"), "no prefix b'\\x02'"),
    (b"\x02\x03\r\n", dict(prefix=b"\x02", suffix=b"\x03"), "nothing between the prefix and the suffix"),
    (b"APT-\x1bABCD\r\n", {}, "control character U+001B"),
    (b"APT-ABCD\x7f\r\n", {}, "control character U+007F"),
    (b"APT-\x00ABCD\r\n", {}, "control character U+0000"),
    (b"\xc2\x85APT-ABCD\r\n", {}, "control character U+0085"),  # NEL, a C1 control in UTF-8
    (b"\xff\xfe\x80\r\n", {}, "neither utf-8 nor gb18030"),
    (b"A" * 9 + b"\r\n", dict(max_length=8), "line longer than 8 bytes"),
]


@pytest.mark.parametrize("line, framing, reason", DROPPED, ids=[r for _, _, r in DROPPED])
def test_a_bad_line_is_dropped_with_its_reason_and_the_next_line_reads(caplog, line, framing, reason):
    caplog.set_level(logging.WARNING, "drivers.code_scanner.codec")
    decoder = ScanDecoder(**framing)
    good = encode_scan("APT-ABCD", framing.get("prefix", b""), framing.get("suffix", b""))
    assert decoder.feed(line + good) == [Scan("APT-ABCD")]
    assert decoder.dropped == 1
    [message] = caplog.messages
    assert message.endswith(": " + reason) and "ABCD" not in message


def test_max_length_counts_the_code_not_the_prefix_and_suffix():
    framing = dict(prefix=b"\x02", suffix=b"\x03")
    assert decode(encode_scan("8" * 8, **framing), max_length=8, **framing) == [Scan("8" * 8)]
    assert decode(encode_scan("8" * 9, **framing), max_length=8, **framing) == []


def test_a_line_too_long_is_dropped_whole_even_fed_byte_by_byte():
    decoder, out = ScanDecoder(max_length=8), []
    for byte in b"123456789ABCDEF\r\n12345678\r\n":
        out += decoder.feed(bytes([byte]))
        assert len(decoder._line) <= 8  # never more than one code's worth held
    assert out == [Scan("12345678")] and decoder.dropped == 1


def test_after_noise_too_long_for_a_line_a_prefix_split_across_reads_still_resynchronises():
    decoder = ScanDecoder(prefix=b"\x1b\x02", suffix=b"\x03", max_length=16)
    assert decoder.feed(b"\xaa" * 100 + b"\x1b") == []
    assert decoder.feed(b"\x02APT-ABCD\x03\r\n") == [Scan("APT-ABCD")]


def test_a_scanner_set_to_gb18030_reads_in_chinese():
    text = "张三丰的预约"
    data = encode_scan(text, encoding="gb18030")
    assert data != encode_scan(text)
    assert decode(data) == [Scan(text)]


def test_the_unfinished_line_can_be_dropped(caplog):
    caplog.set_level(logging.WARNING, "drivers.code_scanner.codec")
    decoder = ScanDecoder()
    decoder.feed(b"\x00\x13noise")
    assert decoder.drop_pending("no line end within 0.5 s") == 7
    assert decoder.feed(b"APT-ABCD\r\n") == [Scan("APT-ABCD")]
    assert caplog.messages == ["code scanner: dropped 7 bytes: no line end within 0.5 s"]
    assert decoder.drop_pending("nothing") == 0 and decoder.dropped == 1


@pytest.mark.parametrize("call", [
    lambda: encode_scan(""),
    lambda: encode_scan("APT-AB\r\nCD"),
    lambda: encode_scan("APT-\tABCD"),
    lambda: encode_scan("APT-ABCD", terminator=b"\x03"),
    lambda: encode_scan("张三", encoding="ascii"),
    lambda: encode_scan("APT-ABCD", suffix=b"\x03\r"),
    lambda: ScanDecoder(prefix=b"\n"),
    lambda: ScanDecoder(prefix=b"#", suffix=b"#\x03"),
    lambda: ScanDecoder(max_length=0),
], ids=["empty", "line end", "tab", "terminator", "encoding", "suffix with CR", "prefix LF",
        "prefix in suffix", "max_length"])
def test_what_cannot_be_one_scan_is_a_protocol_error(call):
    with pytest.raises(ScannerProtocolError):
        call()


# --- properties --------------------------------------------------------------------------------

# Printable text of every script: no control characters (category Cc), which covers CR and LF.
codes = st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=80).filter(
    lambda t: len(t.encode()) <= MAX_LENGTH)
chinese = st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), min_size=1, max_size=40)
prefixes = st.sampled_from([b"", b"\x02", b"\x1b\x02", b"]Q1", b"#"])
suffixes = st.sampled_from([b"", b"\x03", b"\t", b";", b"\x04\x03"])
terminators = st.sampled_from([b"\r", b"\n", b"\r\n"])


@given(st.lists(codes | chinese, min_size=1, max_size=5), prefixes, suffixes, terminators)
def test_round_trip(texts, prefix, suffix, terminator):
    # A printable prefix inside a code would look like the start of the next scan.
    assume(not any(prefix and prefix in t.encode() for t in texts))
    stream = b"".join(encode_scan(t, prefix, suffix, terminator) for t in texts)
    assert ScanDecoder(prefix, suffix).feed(stream) == [Scan(t) for t in texts]


@given(chinese)
def test_round_trip_from_a_gb18030_scanner(text):
    data = encode_scan(text, encoding="gb18030")
    assume(not _is_utf8(data[:-2]))  # the fallback is for bytes that are not UTF-8 (see ENCODINGS)
    assert decode(data) == [Scan(text)]


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@given(st.lists(codes | chinese, max_size=5), prefixes, suffixes, terminators, st.data())
def test_any_chunking_decodes_the_same(texts, prefix, suffix, terminator, data):
    assume(not any(prefix and prefix in t.encode() for t in texts))
    stream = b"".join(encode_scan(t, prefix, suffix, terminator) for t in texts)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=30)))
    decoder, out = ScanDecoder(prefix, suffix), []
    for start, end in zip([0] + cuts, cuts + [len(stream)], strict=True):
        out += decoder.feed(stream[start:end])
    assert out == [Scan(t) for t in texts] and decoder.pending == 0


noise = st.binary(max_size=4000) | st.lists(st.sampled_from(
    [b"\r", b"\n", b"\x02", b"\x03", b"\x00", b"\xff", b"\xe4\xb8", b"APT-", b"1" * 17, b"\xd5\xc5"]),
    max_size=300).map(b"".join)


@given(noise, st.integers(1, 64), prefixes, suffixes, st.integers(1, MAX_LENGTH))
@settings(deadline=500)
def test_arbitrary_bytes_never_break_the_decoder(junk, chunk, prefix, suffix, max_length):
    decoder = ScanDecoder(prefix, suffix, max_length)
    started = time.monotonic()
    try:
        for i in range(0, len(junk), chunk):
            for scan in decoder.feed(junk[i:i + chunk]):
                assert isinstance(scan, Scan) and 0 < len(scan.text) <= max_length
                assert not any(unicodedata.category(c) == "Cc" for c in scan.text)
            # Memory stays bounded: one line's worth, however long the noise runs without a line end.
            assert len(decoder._line) <= max_length + len(prefix) + len(suffix)
    except ScannerProtocolError:
        pass
    assert time.monotonic() - started < 0.5


@given(noise, codes, st.sampled_from([b"\x02", b"\x1b\x02"]), suffixes)
@settings(deadline=500)
def test_with_a_prefix_a_scan_right_after_any_noise_still_reads(junk, text, prefix, suffix):
    assume(prefix not in text.encode())
    decoder = ScanDecoder(prefix, suffix)
    out = decoder.feed(junk) + decoder.feed(encode_scan(text, prefix, suffix))
    assert out[-1] == Scan(text)


@given(noise, codes)
@settings(deadline=500)
def test_without_a_prefix_a_line_end_after_the_noise_resynchronises(junk, text):
    decoder = ScanDecoder()
    out = decoder.feed(junk + b"\r\n") + decoder.feed(encode_scan(text))
    assert out[-1] == Scan(text)
