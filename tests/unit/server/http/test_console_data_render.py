"""The message browser's pure parts: how bytes are rendered and how a search matches.

Goal: text stays text, JSON is pretty-printed, anything else is hex, every rendering is capped
and says so; the raw-bytes filter never skips a batch that has a match (it only skips when the
literal is absent from the batch's bytes) and is not used where it could be wrong (regex,
compressed batches). Method: direct calls on crafted bytes and on batches built by the storage
codec.
"""

from __future__ import annotations

import json

import pytest
from freshet.server.http.console_data.messages import DISPLAY_CHARS_MAX, SearchSpec, _Matcher, render
from freshet.storage.record_batch import Record, encode_batch


def test_text_json_hex_and_null_render_as_such():
    assert render(None).kind == "null"
    assert (render(b"hello world").kind, render(b"hello world").text) == ("text", "hello world")
    assert render(b"line one\nline two\tx").kind == "text"
    pretty = render(b'{"a":1,"b":[1,2]}')
    assert pretty.kind == "json" and json.loads(pretty.text) == {"a": 1, "b": [1, 2]} and "\n" in pretty.text
    assert render(b"{not json").kind == "text"
    assert render("üñíçødé".encode()).text == "üñíçødé"
    binary = render(b"\x00\x01\xff")
    assert (binary.kind, binary.text, binary.size_bytes, binary.is_truncated) == ("hex", "00 01 ff", 3, False)
    assert render(b"\x1b[31m").kind == "hex"                    # control characters are not text


def test_long_values_are_capped_and_flagged():
    text = render(b"x" * (DISPLAY_CHARS_MAX + 10))
    assert len(text.text) == DISPLAY_CHARS_MAX and text.is_truncated and text.size_bytes == DISPLAY_CHARS_MAX + 10
    binary = render(bytes(10_000))
    assert binary.kind == "hex" and binary.is_truncated and len(binary.text) <= DISPLAY_CHARS_MAX


def _batch(records) -> memoryview:
    return memoryview(encode_batch([Record(0, key, value, headers) for key, value, headers in records]))


def test_the_raw_filter_skips_only_batches_without_the_literal():
    matcher = _Matcher(SearchSpec("needle"))
    with_it = _batch([(b"k", b"a needle here", ())])
    without = _batch([(b"k", b"nothing", ())])
    assert matcher.batch_may_match(with_it, 0)
    assert not matcher.batch_may_match(without, 0)
    assert matcher.batch_may_match(without, 1)                  # compressed: must decode
    assert _Matcher(SearchSpec("NEEDLE", ignore_case=True)).batch_may_match(with_it, 0)
    assert not _Matcher(SearchSpec("NEEDLE")).batch_may_match(with_it, 0)
    assert _Matcher(SearchSpec("ne+dle", is_regex=True)).batch_may_match(without, 0)    # regex: never skipped


def test_records_match_on_the_chosen_fields():
    headers = [("trace", b"abc"), ("needle-name", None)]
    assert _Matcher(SearchSpec("needle")).matches(None, b"x", headers)
    assert not _Matcher(SearchSpec("needle", in_headers=False)).matches(None, b"x", headers)
    assert _Matcher(SearchSpec("abc")).matches(None, None, headers)
    assert _Matcher(SearchSpec("k1", in_values=False)).matches(b"k1", b"v", [])
    assert not _Matcher(SearchSpec("k1", in_keys=False)).matches(b"k1", b"v", [])
    assert _Matcher(SearchSpec(r"^v\d+$", is_regex=True)).matches(None, b"v42", [])
    assert _Matcher(SearchSpec("ÜBER", ignore_case=True)).matches(None, "über".encode(), [])


def test_bad_searches_are_refused():
    with pytest.raises(ValueError, match="empty"):
        _Matcher(SearchSpec(""))
    with pytest.raises(ValueError, match="regular expression"):
        _Matcher(SearchSpec("[", is_regex=True))
    with pytest.raises(ValueError, match="at least one"):
        _Matcher(SearchSpec("x", in_keys=False, in_values=False, in_headers=False))
