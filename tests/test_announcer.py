"""The hall's voice (语音播报): what it says, that espeak-ng really says it, and that calls never talk over
each other."""

from __future__ import annotations

import shutil
import subprocess
import time
import wave
from datetime import datetime
from pathlib import Path

import pytest

from drivers.announcer.announcer import CACHE_PHRASES
from drivers.announcer import (
    RECALL_PREFIX, Announcement, Announcer, AnnouncerError, EspeakSynthesizer, SpokenWords,
    announcement_text, call_phrase, chinese_number, spell_ticket, vocabulary,
)

MONDAY_0905 = datetime(2026, 11, 23, 9, 5, 12)


@pytest.fixture(scope="module")
def espeak() -> EspeakSynthesizer:
    """The real synthesizer; a machine without it fails here, loudly, instead of skipping."""
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: `make test` installs them (Makefile DEB_PACKAGES), "
                    f"or run apt-get install espeak-ng sox", pytrace=False)
    return EspeakSynthesizer()


class RecordingSynth:
    """A fast stand-in that writes 0.1 s of silence and remembers what it was asked to say."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def to_wav(self, text: str, path: Path) -> Path:
        self.texts.append(text)
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(22050)
            out.writeframes(b"\0\0" * 2205)
        return path


class CountingSynth:
    """The real synthesizer, counted."""

    def __init__(self, inner: EspeakSynthesizer) -> None:
        self.inner = inner
        self.texts: list[str] = []

    def to_wav(self, text: str, path: Path) -> Path:
        self.texts.append(text)
        return self.inner.to_wav(text, path)


def fake_player(tmp_path: Path, seconds: float = 0.2) -> tuple[Path, Path]:
    """A speaker that takes `seconds` per play and logs when it started and ended, with its arguments."""
    log = tmp_path / "speaker.log"
    script = tmp_path / "fake-aplay"
    script.write_text(f'#!/bin/sh\necho "start $(date +%s.%N) $*" >> {log}\nsleep {seconds}\n'
                      f'echo "end $(date +%s.%N) $*" >> {log}\n')
    script.chmod(0o755)
    return script, log


def plays(log: Path) -> list[tuple[float, float, str]]:
    """(start, end, arguments) of every play, in the order they started."""
    starts: dict[str, list[float]] = {}
    result = []
    for line in log.read_text().splitlines():
        event, stamp, args = line.split(" ", 2)
        if event == "start":
            starts.setdefault(args, []).append(float(stamp))
        else:
            result.append((starts[args].pop(0), float(stamp), args))
    return sorted(result)


def sox_duration(path: Path) -> float:
    return float(subprocess.run(["sox", "--i", "-D", str(path)], capture_output=True, text=True, check=True).stdout)


def sox_rms(path: Path) -> float:
    stat = subprocess.run(["sox", str(path), "-n", "stat"], capture_output=True, text=True, check=True).stderr
    line = next(line for line in stat.splitlines() if line.startswith("RMS     amplitude"))
    return float(line.split(":")[1])


# --- what the hall says -----------------------------------------------------------------------

@pytest.mark.parametrize(("n", "spoken"), [
    (1, "一"), (2, "二"), (3, "三"), (9, "九"), (10, "十"), (11, "十一"), (12, "十二"), (19, "十九"),
    (20, "二十"), (21, "二十一"), (99, "九十九"), (100, "一百"), (101, "一百零一"), (110, "一百一十"),
    (120, "一百二十"), (999, "九百九十九"), (1000, "一千"), (1001, "一千零一"), (1010, "一千零一十"),
])
def test_window_numbers_are_read_as_numbers(n: int, spoken: str) -> None:
    assert chinese_number(n) == spoken


@pytest.mark.parametrize(("number", "spelled"), [
    ("A001", "A 零 零 一"), ("A010", "A 零 一 零"), ("B100", "B 一 零 零"), ("c007", "C 零 零 七"),
    ("AB12", "A B 一 二"), ("0042", "零 零 四 二"), (" D999 ", "D 九 九 九"),
])
def test_ticket_numbers_are_spelled_character_by_character(number: str, spelled: str) -> None:
    assert spell_ticket(number) == spelled


@pytest.mark.parametrize(("number", "window", "phrase"), [
    ("A001", 3, "请 A 零 零 一 号 到 三号窗口 办理"),
    ("A002", 10, "请 A 零 零 二 号 到 十号窗口 办理"),
    ("B015", 12, "请 B 零 一 五 号 到 十二号窗口 办理"),
    ("C120", 20, "请 C 一 二 零 号 到 二十号窗口 办理"),
    ("D101", 100, "请 D 一 零 一 号 到 一百号窗口 办理"),
])
def test_call_phrase(number: str, window: int, phrase: str) -> None:
    assert announcement_text(number, window) == phrase == call_phrase(number, window)
    assert announcement_text(number, window, recall=True) == RECALL_PREFIX + phrase == "再次呼叫，" + phrase


@pytest.mark.parametrize("number", ["", "A", "A-001", "号001", "A001B", "A 001"])
def test_a_malformed_ticket_number_is_refused(number: str) -> None:
    with pytest.raises(ValueError):
        spell_ticket(number)


@pytest.mark.parametrize("window", [0, -1, 10000])
def test_a_window_outside_the_hall_is_refused(window: int) -> None:
    with pytest.raises(ValueError):
        chinese_number(window)


# --- espeak-ng really says it -----------------------------------------------------------------

def test_espeak_reads_a_ticket_number_as_a_number_but_the_spelled_one_digit_by_digit(espeak) -> None:
    assert "pai" in espeak.phonemes("A101")  # 一百…: why tickets are spelled
    for number in ("A001", "A101", "B120", "C999"):
        syllables = [word for word in espeak.phonemes(spell_ticket(number)).split("_|") if word.strip()]
        assert len(syllables) == len(number), (number, syllables)


@pytest.mark.parametrize(("number", "window", "recall"), [("A001", 3, False), ("B120", 12, True), ("C007", 100, False)])
def test_the_voice_reads_every_phrase_as_mandarin(espeak, number: str, window: int, recall: bool) -> None:
    # `(en)` is espeak-ng switching to English, as the plain `cmn` voice of Debian 12 does for 请, 号, 零.
    assert "(en)" not in espeak.phonemes(announcement_text(number, window, recall))


@pytest.mark.parametrize("recall", [False, True])
def test_a_call_becomes_an_audible_wav_of_a_few_seconds(espeak, tmp_path: Path, recall: bool) -> None:
    wav = espeak.to_wav(announcement_text("A001", 3, recall), tmp_path / "call.wav")
    assert 1.0 < sox_duration(wav) < 10.0
    assert sox_rms(wav) > 0.01


def test_without_espeak_the_error_names_the_debian_package(tmp_path: Path) -> None:
    synth = EspeakSynthesizer(executable="espeak-ng-not-installed-here")
    with pytest.raises(AnnouncerError, match=r"apt-get install espeak-ng\)"):
        synth.to_wav("请 A 零 零 一 号 到 三号窗口 办理", tmp_path / "call.wav")


def test_an_unknown_voice_is_an_announcer_error(espeak, tmp_path: Path) -> None:
    with pytest.raises(AnnouncerError, match="voice does not exist"):
        EspeakSynthesizer(voice="nosuchvoice").to_wav("请", tmp_path / "call.wav")


# --- the announcer ----------------------------------------------------------------------------

def test_announcements_are_played_one_after_another_in_order(tmp_path: Path) -> None:
    player, log = fake_player(tmp_path, seconds=0.2)
    with Announcer(RecordingSynth(), tmp_path / "wav", audio_device="plughw:1,0", player=str(player), gap=0) as hall:
        began = time.monotonic()
        for number, window in [("A001", 3), ("A002", 4), ("B001", 12)]:
            hall.announce(number, window)
        assert time.monotonic() - began < 0.1  # the caller never waits for the speaker
        assert hall.wait_idle(10)
    heard = plays(log)
    assert [args.split()[-1].rsplit("-", 2)[-2:] for _, _, args in heard] == [
        ["A001", "w3.wav"], ["A002", "w4.wav"], ["B001", "w12.wav"]]
    assert all(args.startswith("-q -D plughw:1,0 ") for _, _, args in heard)
    for (_, end, _), (next_start, _, _) in zip(heard, heard[1:], strict=False):
        assert end <= next_start


def test_a_recall_is_the_recall_prefix_then_the_same_wav_as_the_call(espeak, tmp_path: Path) -> None:
    synth = CountingSynth(espeak)
    with Announcer(synth, tmp_path, clock=lambda: MONDAY_0905) as hall:
        hall.announce("A001", 3)
        hall.announce("A001", 3, recall=True)
        hall.announce("A001", 3, recall=True)
        assert hall.wait_idle(10)
    call = tmp_path / "20261123-090512-A001-w3.wav"
    prefix = tmp_path / "20261123-090512-recall.wav"
    phrase = "请 A 零 零 一 号 到 三号窗口 办理"
    assert hall.played == [(phrase, call), (RECALL_PREFIX, prefix), (phrase, call), (RECALL_PREFIX, prefix),
                           (phrase, call)]
    assert synth.texts == [phrase, RECALL_PREFIX]  # each phrase synthesized once
    assert sorted(tmp_path.iterdir()) == sorted([call, prefix])
    assert 0.5 < sox_duration(prefix) < 3.0


def test_repeats_two_plays_every_announcement_twice_with_a_gap(tmp_path: Path) -> None:
    player, log = fake_player(tmp_path, seconds=0.1)
    synth = RecordingSynth()
    with Announcer(synth, tmp_path / "wav", audio_device="default", player=str(player), repeats=2, gap=0.3) as hall:
        hall.announce("A001", 3)
        assert hall.wait_idle(10)
    (first_start, first_end, first), (second_start, _, second) = plays(log)
    assert first == second and first.endswith("-A001-w3.wav")
    assert second_start - first_end >= 0.25
    assert len(synth.texts) == 1
    assert [text for text, _ in hall.played] == [call_phrase("A001", 3)] * 2


def test_repeats_two_without_a_speaker_records_two_plays(tmp_path: Path) -> None:
    with Announcer(RecordingSynth(), tmp_path, repeats=2, clock=lambda: MONDAY_0905) as hall:
        hall.announce("B015", 12, recall=True)
        assert hall.wait_idle(5)
    assert [path.name for _, path in hall.played] == [
        "20261123-090512-recall.wav", "20261123-090512-B015-w12.wav"] * 2


def test_a_wav_left_from_an_earlier_run_is_never_overwritten(tmp_path: Path) -> None:
    old = tmp_path / "20261123-090512-A001-w3.wav"
    old.write_bytes(b"yesterday")
    with Announcer(RecordingSynth(), tmp_path, clock=lambda: MONDAY_0905) as hall:
        hall.announce("A001", 3)
        assert hall.wait_idle(5)
    assert hall.played == [(call_phrase("A001", 3), tmp_path / "20261123-090512-A001-w3-2.wav")]
    assert old.read_bytes() == b"yesterday"


def test_a_missing_synthesizer_is_reported_and_calling_goes_on(tmp_path: Path) -> None:
    faults: list[tuple[Announcement, Exception]] = []
    with Announcer(EspeakSynthesizer(executable="espeak-ng-not-installed-here"), tmp_path,
                   on_error=lambda a, e: faults.append((a, e))) as hall:
        hall.announce("A001", 3)
        hall.announce("A002", 4)
        assert hall.wait_idle(5)
    assert [a for a, _ in faults] == [Announcement("A001", 3), Announcement("A002", 4)]
    assert all(isinstance(e, AnnouncerError) and "espeak-ng" in str(e) for _, e in faults)
    assert hall.played == []
    assert hall.last_error is faults[-1][1]


def test_a_missing_speaker_names_alsa_utils_and_a_broken_listener_does_not_stop_the_voice(tmp_path: Path) -> None:
    def broken_listener(announcement: Announcement, error: Exception) -> None:
        raise RuntimeError("dashboard down")

    with Announcer(RecordingSynth(), tmp_path, audio_device="default", player="aplay-not-installed-here",
                   on_error=broken_listener, gap=0) as hall:
        hall.announce("A001", 3)
        hall.announce("A002", 4)
        assert hall.wait_idle(5)
    assert isinstance(hall.last_error, AnnouncerError)
    assert "alsa-utils" in str(hall.last_error)


def test_close_speaks_what_is_queued_and_then_refuses_more(tmp_path: Path) -> None:
    hall = Announcer(RecordingSynth(), tmp_path)
    hall.announce("A001", 3)
    hall.announce("A002", 4)
    hall.close()
    assert len(hall.played) == 2
    with pytest.raises(RuntimeError):
        hall.announce("A003", 5)


def test_a_malformed_ticket_is_refused_at_the_caller(tmp_path: Path) -> None:
    with Announcer(RecordingSynth(), tmp_path) as hall:
        with pytest.raises(ValueError):
            hall.announce("A-001", 3)
        assert hall.wait_idle(1)


# --- the words a call is said from ------------------------------------------------------------

class StereoSynth(RecordingSynth):
    """A synthesizer writing stereo WAVs, which words cannot be joined from."""

    def to_wav(self, text: str, path: Path) -> Path:
        self.texts.append(text)
        with wave.open(str(path), "wb") as out:
            out.setnchannels(2)
            out.setsampwidth(2)
            out.setframerate(22050)
            out.writeframes(b"\1\0" * 4410)
        return path


def test_a_call_is_said_from_its_words_each_synthesized_once(espeak, tmp_path: Path) -> None:
    synth = CountingSynth(espeak)
    words = SpokenWords(synth, tmp_path / "words", "cmn-latn-pinyin 150")
    with Announcer(words, tmp_path, clock=lambda: MONDAY_0905) as hall:
        hall.announce("A001", 3)
        hall.announce("A002", 3)
        hall.announce("A002", 3, recall=True)
        assert hall.wait_idle(30)
    # the phrases are the hall's as before; the synthesizer said each word once
    assert [text for text, _ in hall.played] == [
        call_phrase("A001", 3), call_phrase("A002", 3), RECALL_PREFIX, call_phrase("A002", 3)]
    assert synth.texts == ["请", "A", "零", "一", "号", "到", "三号窗口", "办理", "二", "再次呼叫，"]
    said, whole = hall.played[0][1], espeak.to_wav(call_phrase("A001", 3), tmp_path / "whole.wav")
    assert 1.0 < sox_duration(said) < 10.0 and sox_rms(said) > 0.01
    # the words one after another take about as long as the phrase said whole
    assert 0.7 < sox_duration(said) / sox_duration(whole) < 1.4


def test_the_words_are_kept_across_a_restart(espeak, tmp_path: Path) -> None:
    SpokenWords(espeak, tmp_path / "words", "v").to_wav(call_phrase("A001", 3), tmp_path / "a.wav")
    gone = SpokenWords(EspeakSynthesizer(executable="espeak-ng-not-installed-here"),
                       tmp_path / "words", "v")
    wav = gone.to_wav(call_phrase("A010", 3), tmp_path / "b.wav")
    assert 1.0 < sox_duration(wav) < 10.0
    # another voice is other words: said by its own synthesizer, which is missing here
    with pytest.raises(AnnouncerError):
        SpokenWords(gone.synth, tmp_path / "words", "another voice").to_wav(
            call_phrase("A001", 3), tmp_path / "c.wav")


def test_the_halls_words_are_ready_before_the_first_call(espeak, tmp_path: Path) -> None:
    synth = CountingSynth(espeak)
    words = SpokenWords(synth, tmp_path / "words", "v")
    words.warm(vocabulary(["A", "BC"], [1, 12])).join(60)
    assert "十二号窗口" in synth.texts and "C" in synth.texts and "再次呼叫，" in synth.texts
    before = len(synth.texts)
    words.to_wav(call_phrase("C907", 12), tmp_path / "call.wav")
    assert len(synth.texts) == before


def test_words_that_cannot_be_joined_are_said_as_a_whole_phrase(tmp_path: Path) -> None:
    synth = StereoSynth()
    words = SpokenWords(synth, tmp_path / "words", "v")
    words.to_wav(call_phrase("A001", 3), tmp_path / "call.wav")
    assert synth.texts[-1] == call_phrase("A001", 3)


def test_vocabulary_holds_every_word_of_the_halls_calls() -> None:
    phrases = vocabulary(["A", "b1"], [3, 20])
    said = {w for p in phrases for w in p.split()}
    for number, window in (("A019", 3), ("B287", 20)):
        assert set(call_phrase(number, window).split()) <= said
    assert RECALL_PREFIX in phrases


def test_a_phrase_written_over_an_old_phrases_file_holds_only_itself(tmp_path: Path) -> None:
    """The announcer writes a new phrase over the file of the one it forgets (cheaper for the
    filesystem than a new file): a short phrase over a long one leaves nothing of the long one."""
    words = SpokenWords(RecordingSynth(), tmp_path / "words", "v")
    with Announcer(words, tmp_path / "calls") as hall:
        for n in range(CACHE_PHRASES):
            hall.announce(f"A{n:09}", 3)  # long numbers: long phrases
        hall.announce("B7", 3)
        assert hall.wait_idle(30)
    assert len(list((tmp_path / "calls").iterdir())) == CACHE_PHRASES
    text, said = hall.played[-1]
    fresh = words.to_wav(text, tmp_path / "fresh.wav")
    assert said.read_bytes() == fresh.read_bytes()
    with wave.open(str(said)) as f:
        assert f.getnframes() * 2 + 44 == said.stat().st_size
