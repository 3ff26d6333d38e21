"""The tablet pad's JSON: grades by name or the pad's key (1 非常满意 … 5 非常不满意), and nothing else gets through."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.evaluator_pad import (
    PAD_GRADES, PadGrade, PadProtocolError, encode_grade_json, pad_state_json, parse_grade_json,
)


@pytest.mark.parametrize("grade,name", [(1, "非常满意"), (3, "基本满意"), (5, "非常不满意"),
                                        ("不满意", "不满意")])
def test_grades_by_code_or_name(grade, name):
    payload = {"id": "x1", "grade": grade, "tags": ["态度"]}
    import json
    assert parse_grade_json(json.dumps(payload, ensure_ascii=False)) == PadGrade("x1", name, ("态度",))


@pytest.mark.parametrize("payload", [
    b"not json", b"[1]", b'{"grade": 1}', b'{"id": "a", "grade": 0}', b'{"id": "a", "grade": 6}',
    b'{"id": "a", "grade": true}', b'{"id": "a", "grade": "ok"}', b'{"id": "a", "grade": 1, "x": 1}',
    b'{"id": "a", "grade": 1, "tags": "abc"}', b'{"id": "", "grade": 1}', b"\xff\xfe",
])
def test_bad_messages_are_the_codecs_own_error(payload):
    with pytest.raises(PadProtocolError):
        parse_grade_json(payload)


@given(st.sampled_from(PAD_GRADES), st.text(min_size=1, max_size=64),
       st.lists(st.text(min_size=1, max_size=16), max_size=8))
def test_round_trip(grade, message_id, tags):
    g = PadGrade(message_id, grade, tuple(tags))
    assert parse_grade_json(encode_grade_json(g)) == g


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise_anything_else(data):
    try:
        parse_grade_json(data)
    except PadProtocolError:
        pass


def test_pad_states():
    assert pad_state_json("prompt", 3, "陈静", "A012") == {"state": "prompt", "window": 3,
                                                          "staff": "陈静", "ticket": "A012"}
    assert pad_state_json("blank") == {"state": "blank"}
    with pytest.raises(PadProtocolError):
        pad_state_json("dance")
