"""Turning a phrase into a WAV file, offline: the hall has no internet.

The Mandarin voice is `cmn-latn-pinyin`, not `cmn`. With the espeak-ng 1.51 of
Debian 12, `cmn` ("latin as English") reads the pinyin its own dictionary
gives for most characters as English words: 请 comes out as "king three" and
号 as "hao four" (`espeak-ng -v cmn -q -x 请` shows `(en)kI55NTr'i:55`).
`cmn-latn-pinyin` reads the same characters as Mandarin and still says single
capital letters by their letter names, which is all a ticket number needs.
`EspeakSynthesizer.phonemes` shows what a voice will say, so a hall can check
another espeak-ng version before switching voice.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import Protocol

from drivers.announcer.speech import speakable

log = logging.getLogger(__name__)

ESPEAK_PACKAGE = "espeak-ng"
PLAYER_PACKAGE = "alsa-utils"


class AnnouncerError(Exception):
    """The hall's voice cannot speak now: synthesizer or speaker missing or failing."""

    code = "announcer_fault"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Synthesizer(Protocol):
    """Anything that writes a phrase as a WAV file (the whole file: one at `path` may be an
    old phrase's, given to be written over)."""

    def to_wav(self, text: str, path: Path) -> Path: ...


def run_tool(command: list[str], package: str, timeout: float) -> subprocess.CompletedProcess[bytes]:
    """Run an external program; every way it can fail becomes an `AnnouncerError` naming its package."""
    try:
        done = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
    except FileNotFoundError as error:
        raise AnnouncerError(
            f"{command[0]} not found; install the Debian package {package} (apt-get install {package})"
        ) from error
    except PermissionError as error:
        raise AnnouncerError(f"{command[0]} cannot be run ({error}); reinstall the Debian package {package}") from error
    except subprocess.TimeoutExpired as error:
        raise AnnouncerError(f"{command[0]} did not finish within {timeout:g} s") from error
    if done.returncode != 0:
        stderr = done.stderr.decode("utf-8", "replace").strip()
        raise AnnouncerError(f"{command[0]} failed with exit code {done.returncode}: {stderr or 'no message'}")
    return done


class EspeakSynthesizer:
    """espeak-ng, run once per phrase; the phrase is `speakable` first, whoever made it."""

    def __init__(self, voice: str = "cmn-latn-pinyin", speed: int = 150, executable: str = "espeak-ng",
                 timeout: float = 10.0) -> None:
        self.voice = voice
        self.speed = speed
        self.executable = executable
        self.timeout = timeout

    def to_wav(self, text: str, path: Path) -> Path:
        """Write `text` spoken as a WAV file at `path`; raises `AnnouncerError`."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)  # so that the check below sees only what espeak-ng wrote
        run_tool([self.executable, "-v", self.voice, "-s", str(self.speed), "-w", str(path), "--",
                  speakable(text)],
                 ESPEAK_PACKAGE, self.timeout)
        # espeak-ng exits 0 on some failures to open the output file.
        if not path.is_file() or path.stat().st_size <= 44:
            raise AnnouncerError(f"{self.executable} wrote no audio to {path}")
        return path

    def phonemes(self, text: str) -> str:
        """What the voice will say, in espeak-ng's phoneme notation; `(en)` marks a switch to English."""
        done = run_tool([self.executable, "-v", self.voice, "-s", str(self.speed), "-q", "-x", "--",
                         speakable(text)],
                        ESPEAK_PACKAGE, self.timeout)
        return done.stdout.decode("utf-8", "replace").strip()
