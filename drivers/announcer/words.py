"""A call said from words synthesized once: the hall's voice without a synthesizer per call.

A call is a handful of words the hall says again and again: 请, the ticket's letter and
digits one by one, 号, 到, the window ("十二号窗口"), 办理. `SpokenWords` has each word
synthesized once (by espeak-ng, offline, as before), trims the silence around it, keeps it
in memory and as a WAV file under its directory (so a restart does not synthesize again),
and writes a phrase as its words one after another with a short pause between them, as the
recorded-voice callers of many halls do. The words are those of the phrase, in its order:
the hall says the same thing. espeak-ng ran once per call before, some 8 ms of a core each,
competing with the calls themselves for a hall PC's two cores.

A phrase whose words cannot be joined (a synthesizer writing another WAV format) is
synthesized whole, as before.
"""

from __future__ import annotations

import array
import hashlib
import logging
import os
import struct
import sys
import threading
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from drivers.announcer.speech import speakable
from drivers.announcer.synth import Synthesizer

log = logging.getLogger(__name__)

PAUSE_SECONDS = 0.06  # between two words: about espeak-ng's own between the words of a phrase
EDGE_SECONDS = 0.01  # kept of the silence before and after a word's sound
QUIET = 300  # a sample below this (of 32767) is silence: about -40 dB
WARM_NICE = 10  # how much lower the background synthesis runs than the calls


@dataclass(frozen=True)
class _Word:
    """One word's sound: 16-bit mono frames at `rate`."""

    rate: int
    frames: bytes


class SpokenWords:
    """A `Synthesizer` that says a phrase from words `synth` said once each, kept in `words_dir`
    under `voice` (the synthesizer's voice and speed: another voice makes other files)."""

    def __init__(self, synth: Synthesizer, words_dir: Path, voice: str) -> None:
        self.synth = synth
        self.words_dir = Path(words_dir)
        self.voice = voice
        self._words: dict[str, _Word] = {}
        self._lock = threading.Lock()  # one word synthesized at a time, and once

    def to_wav(self, text: str, path: Path) -> Path:
        """Write `text` spoken, word after word, as a WAV file at `path`."""
        words = [self.word(w) for w in speakable(text).split()]
        rates = {w.rate for w in words}
        if len(rates) != 1 or 0 in rates:
            return self.synth.to_wav(text, path)
        rate = rates.pop()
        pause = b"\0\0" * round(rate * PAUSE_SECONDS)
        chunks = [words[0].frames]
        for w in words[1:]:
            chunks += [pause, w.frames]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # the header and the words' frames handed to the file as they are (a phrase is some
        # 200 KB, and joining it in memory first cost more than the writing), over what the
        # file held (the announcer gives an old phrase's file: its blocks are used again)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            size = 44 + sum(len(c) for c in chunks)
            _write_all(fd, [_header(rate, size - 44), *chunks])
            os.ftruncate(fd, size)
        finally:
            os.close(fd)
        return path

    def word(self, word: str) -> _Word:
        """The sound of `word`: remembered, else read from its file, else synthesized now."""
        found = self._words.get(word)
        if found is not None:
            return found
        with self._lock:
            found = self._words.get(word) or self._read(word) or self._synthesize(word)
            self._words[word] = found
            return found

    def warm(self, phrases: Iterable[str]) -> threading.Thread:
        """Have the words of `phrases` ready before they are first called (a hall's window names),
        in a thread of its own at a lower priority than the calls; returns the thread."""
        words = list(dict.fromkeys(w for p in phrases for w in speakable(p).split()))

        def run() -> None:
            _lower_priority()
            for w in words:
                try:
                    self.word(w)
                except Exception as e:  # the call that needs it says it again, or reports
                    log.warning("voice: cannot prepare %r: %s", w, e)
                    return

        thread = threading.Thread(target=run, name="voice-words", daemon=True)
        thread.start()
        return thread

    def _file(self, word: str) -> Path:
        digest = hashlib.sha256(f"{self.voice}\n{word}".encode()).hexdigest()[:20]
        return self.words_dir / f"{digest}.wav"

    def _read(self, word: str) -> _Word | None:
        try:
            with wave.open(str(self._file(word)), "rb") as f:
                if f.getnchannels() != 1 or f.getsampwidth() != 2:
                    return None
                return _Word(f.getframerate(), f.readframes(f.getnframes()))
        except (OSError, EOFError, wave.Error):
            return None

    def _synthesize(self, word: str) -> _Word:
        self.words_dir.mkdir(parents=True, exist_ok=True)
        target = self._file(word)
        raw = target.with_suffix(".raw.wav")
        self.synth.to_wav(word, raw)
        try:
            with wave.open(str(raw), "rb") as f:
                rate, channels, width = f.getframerate(), f.getnchannels(), f.getsampwidth()
                frames = f.readframes(f.getnframes())
        finally:
            raw.unlink(missing_ok=True)
        if channels != 1 or width != 2:
            return _Word(0, b"")  # not joinable: to_wav says such a phrase whole
        said = _Word(rate, _trimmed(frames, rate))
        part = target.with_suffix(".part")
        with wave.open(str(part), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(rate)
            out.writeframes(said.frames)
        os.replace(part, target)  # a file is whole or absent, whoever reads it
        return said


def _header(rate: int, size: int) -> bytes:
    """A WAV file's header for `size` bytes of 16-bit mono frames at `rate`."""
    return (b"RIFF" + struct.pack("<I", 36 + size) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
            + b"data" + struct.pack("<I", size))


def _write_all(fd: int, chunks: list[bytes]) -> None:
    while chunks:
        done = os.writev(fd, chunks[:_IOV_MAX])
        while chunks and done >= len(chunks[0]):
            done -= len(chunks[0])
            chunks = chunks[1:]
        if chunks and done:
            chunks = [chunks[0][done:], *chunks[1:]]


_IOV_MAX = 1024


def _trimmed(frames: bytes, rate: int) -> bytes:
    """16-bit mono `frames` without the silence before and after the sound, less a margin."""
    samples = array.array("h", frames)
    if sys.byteorder == "big":
        samples.byteswap()  # WAV is little-endian
    start, end = _first_loud(samples, range(0, len(samples), _BLOCK)), None
    if start is None:
        return frames
    end = _first_loud(samples, range(len(samples) - 1, -1, -_BLOCK), backwards=True)
    assert end is not None
    edge = round(rate * EDGE_SECONDS)
    start, end = max(start - edge, 0), min(end + 1 + edge, len(samples))
    return frames[2 * start:2 * end]


_BLOCK = 256  # samples looked at together (by max and min, in C) before one by one


def _first_loud(samples: array.array, blocks: range, backwards: bool = False) -> int | None:
    """The index of the first sample louder than QUIET met going through `blocks` (their
    starts, or going backwards their ends), or None if all are quiet."""
    for at in blocks:
        block = samples[max(at - _BLOCK + 1, 0):at + 1] if backwards else samples[at:at + _BLOCK]
        if max(block) > QUIET or min(block) < -QUIET:
            offsets = range(len(block) - 1, -1, -1) if backwards else range(len(block))
            first = next(i for i in offsets if abs(block[i]) > QUIET)
            return (at - (len(block) - 1) + first) if backwards else at + first
    return None


def _lower_priority() -> None:
    """This thread (and the synthesizer processes it starts) below the calls' priority."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WARM_NICE)
    except (AttributeError, OSError):
        pass
