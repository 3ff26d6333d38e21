"""语音播报: the hall's voice announcement of called and recalled tickets, synthesized offline by espeak-ng."""

from drivers.announcer.announcer import Announcement, Announcer, ErrorListener
from drivers.announcer.speech import (
    RECALL_PREFIX, announcement_text, call_phrase, chinese_number, speakable, spell_ticket, vocabulary,
)
from drivers.announcer.synth import AnnouncerError, EspeakSynthesizer, Synthesizer
from drivers.announcer.words import SpokenWords

__all__ = [
    "RECALL_PREFIX", "Announcement", "Announcer", "AnnouncerError", "ErrorListener", "EspeakSynthesizer",
    "SpokenWords", "Synthesizer", "announcement_text", "call_phrase", "chinese_number", "speakable",
    "spell_ticket", "vocabulary",
]
