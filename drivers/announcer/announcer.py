"""The hall's voice: called tickets are spoken one after another, never over each other.

`announce` only queues; one worker thread synthesizes and plays. A recall is
the spoken prefix "再次呼叫，" followed by the very WAV made for the call, so
it starts at once however slow the synthesizer. Without an audio device the
WAV files are only written to `out_dir` (simulator, tests, a hall PC without
speakers), the last CACHE_PHRASES of them kept; with one they are played by `aplay -D <device>`, `gap` seconds
apart (between repeats and between announcements).

A broken speaker or synthesizer must not stop calling: the screens still show
the number. So every failure is logged and handed to `on_error` for the
supervisor, and the worker goes on with the next announcement.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

from drivers.announcer.speech import RECALL_PREFIX, announcement_text, call_phrase
from drivers.announcer.synth import PLAYER_PACKAGE, AnnouncerError, Synthesizer, run_tool

log = logging.getLogger(__name__)

# A hall calls a few thousand tickets a day at ~200 KB a phrase; only recent
# ones are ever recalled, so a WAV is kept while its phrase is among the last
# CACHE_PHRASES and deleted after: with a device or without one, the voice
# directory holds at most CACHE_PHRASES files (~20 MB) however long the hall runs.
CACHE_PHRASES = 100
PLAYED_KEPT = 1000


@dataclass(frozen=True)
class Announcement:
    """One call or recall of a ticket to a window."""

    number: str
    window: int
    recall: bool = False

    @property
    def text(self) -> str:
        return announcement_text(self.number, self.window, self.recall)


ErrorListener = Callable[[Announcement, Exception], None]


@dataclass(frozen=True)
class Clip:
    """One synthesized phrase: `stem` names its file, `text` is the cache key."""

    text: str
    stem: str


def clips_for(announcement: Announcement) -> list[Clip]:
    call = Clip(call_phrase(announcement.number, announcement.window),
                f"{announcement.number.strip().upper()}-w{announcement.window}")
    return [Clip(RECALL_PREFIX, "recall"), call] if announcement.recall else [call]


class Announcer:
    """Speaks called tickets through one speaker, or writes them as WAV files when there is none."""

    def __init__(self, synth: Synthesizer, out_dir: Path, audio_device: str | None = None,
                 repeats: int = 1, gap: float = 0.5, player: str = "aplay",
                 on_error: ErrorListener | None = None, player_timeout: float = 60.0,
                 clock: Callable[[], datetime] = datetime.now) -> None:
        if repeats < 1:
            raise ValueError(f"repeats must be at least 1, not {repeats}")
        self.synth = synth
        self.out_dir = Path(out_dir)
        self.audio_device = audio_device
        self.repeats = repeats
        self.gap = gap
        self.player = player
        self.on_error = on_error
        self.player_timeout = player_timeout
        self.clock = clock
        self.played: list[tuple[str, Path]] = []
        self.last_error: Exception | None = None
        self._cache: OrderedDict[str, Path] = OrderedDict()
        self._queue: queue.Queue[Announcement | None] = queue.Queue()
        self._pending = 0
        self._idle = threading.Condition()
        self._closed = False
        self._last_end: float | None = None
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._worker = threading.Thread(target=self._run, name="announcer", daemon=True)
        self._worker.start()

    def announce(self, number: str, window: int, recall: bool = False) -> Announcement:
        """Queue a call (or recall) of `number` to `window`; returns at once."""
        announcement = Announcement(number, window, recall)
        clips_for(announcement)  # a malformed ticket number is the caller's bug: raise here, not in the worker
        with self._idle:
            if self._closed:
                raise RuntimeError("announcer is closed")
            self._pending += 1
            self._queue.put(announcement)  # under the lock, so nothing lands behind close()'s sentinel
        return announcement

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until everything queued has been spoken; False if `timeout` ran out first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float | None = 10.0) -> None:
        """Speak what is already queued, then stop the worker."""
        with self._idle:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._worker.join(timeout)

    def __enter__(self) -> Announcer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        while (announcement := self._queue.get()) is not None:
            try:
                self._speak(announcement)
            except Exception as error:  # noqa: BLE001 - a fault is reported, the next call must still be spoken
                self._report(announcement, error)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def _speak(self, announcement: Announcement) -> None:
        clips = [(clip.text, self._wav(clip)) for clip in clips_for(announcement)]
        for _ in range(self.repeats):
            self._play(clips)

    def _wav(self, clip: Clip) -> Path:
        path = self._cache.get(clip.text)
        if path is not None and path.is_file():
            self._cache.move_to_end(clip.text)
            return path
        path = self._fresh_path(clip.stem)
        self._make_room(path)
        try:
            self.synth.to_wav(clip.text, path)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        self._cache[clip.text] = path
        return path

    def _make_room(self, path: Path) -> None:
        """Forget the oldest phrases until one more fits in CACHE_PHRASES; the last one's file
        becomes `path`, for the synthesizer to write over (a `Synthesizer` writes its file
        whole): making and deleting a file costs the filesystem more than writing one over
        (ext4 searches for a free inode each time, and frees and finds the blocks again)."""
        while len(self._cache) >= CACHE_PHRASES:
            _, old = self._cache.popitem(last=False)
            if len(self._cache) < CACHE_PHRASES:
                try:
                    os.replace(old, path)
                    continue
                except OSError:
                    pass
            old.unlink(missing_ok=True)

    def _fresh_path(self, stem: str) -> Path:
        base = f"{self.clock():%Y%m%d-%H%M%S}-{stem}"
        path = self.out_dir / f"{base}.wav"
        n = 2
        while path.exists():
            path = self.out_dir / f"{base}-{n}.wav"
            n += 1
        return path

    def _play(self, clips: list[tuple[str, Path]]) -> None:
        if self.audio_device is not None:
            if self._last_end is not None:
                time.sleep(max(0.0, self._last_end + self.gap - time.monotonic()))
            try:
                # aplay plays its files back to back, so a recall's prefix and call run on without a pause.
                run_tool([self.player, "-q", "-D", self.audio_device, *(str(path) for _, path in clips)],
                         PLAYER_PACKAGE, self.player_timeout)
            finally:
                self._last_end = time.monotonic()
        self.played.extend(clips)
        del self.played[:-PLAYED_KEPT]

    def _report(self, announcement: Announcement, error: Exception) -> None:
        self.last_error = error
        if isinstance(error, AnnouncerError):
            log.error("announcing %s to window %s failed: %s", announcement.number, announcement.window, error)
        else:
            log.exception("announcing %s to window %s failed", announcement.number, announcement.window,
                          exc_info=error)
        if self.on_error is not None:
            try:
                self.on_error(announcement, error)
            except Exception:  # noqa: BLE001 - a broken listener must not stop the voice
                log.exception("on_error listener failed")
