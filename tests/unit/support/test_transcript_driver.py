"""The golden-transcript driver itself: parsing, a failing comparison, and rewriting."""

from __future__ import annotations

import pytest

from tests.support.transcript import (
    REWRITE_ENV,
    TranscriptSyntaxError,
    parse_command,
    parse_transcript,
    run_transcript,
)

TEXT = """\
# A counter.
add n=2
add n=3
----
total=2
total=5

# Flags and quoted values.
show label="a b" verbose
----
label=a b verbose=yes total=5

reset
----
"""


def counter():
    total = 0

    def handle(name: str, args: dict[str, str]) -> str:
        nonlocal total
        if name == "add":
            total += int(args["n"])
            return f"total={total}"
        if name == "show":
            return f"label={args['label']} verbose={'yes' if 'verbose' in args else 'no'} total={total}"
        if name == "reset":
            total = 0
            return ""
        raise KeyError(name)

    return handle


def test_parse_blocks_commands_and_arguments():
    blocks = parse_transcript(TEXT)
    assert [[c.name for c in b.commands] for b in blocks] == [["add", "add"], ["show"], ["reset"]]
    assert blocks[0].commands[1].args == {"n": "3"} and blocks[0].commands[1].line == 3
    assert blocks[0].expected == "total=2\ntotal=5"
    assert blocks[1].commands[0].args == {"label": "a b", "verbose": ""}
    assert blocks[2].expected == ""
    assert parse_command("alter_result ok isr=1,2").args == {"ok": "", "isr": "1,2"}


@pytest.mark.parametrize(
    "bad, line",
    [("----\nx\n", 1), ("a\n\n----\n", 2), ("a\n# c\n----\n", 2), ("a\n", 1), ("a k=1 k=2\n----\n", 1)],
)
def test_malformed_transcripts_name_the_line(bad, line):
    with pytest.raises(TranscriptSyntaxError, match=rf"t\.txt:{line}:"):
        parse_transcript(bad, "t.txt")


def test_a_matching_transcript_passes(tmp_path, monkeypatch):
    monkeypatch.delenv(REWRITE_ENV, raising=False)
    path = tmp_path / "t.txt"
    path.write_text(TEXT)
    run_transcript(path, counter())


def test_a_mismatch_fails_with_a_diff_naming_file_and_line(tmp_path, monkeypatch):
    monkeypatch.delenv(REWRITE_ENV, raising=False)
    path = tmp_path / "t.txt"
    path.write_text(TEXT.replace("total=5\n\n", "total=6\n\n", 1))
    with pytest.raises(AssertionError) as failure:
        run_transcript(path, counter())
    message = str(failure.value)
    assert f"{path}:2: output differs" in message
    assert "-total=6" in message and "+total=5" in message
    assert "1 of 3 blocks differ" in message
    assert path.read_text() != TEXT, "without the flag the file is left alone"


def test_rewrite_replaces_only_the_outputs(tmp_path, monkeypatch):
    path = tmp_path / "t.txt"
    stale = TEXT.replace("total=2\ntotal=5", "old").replace("verbose=yes total=5", "verbose=yes total=1\nextra")
    stale = stale.replace("reset\n----\n", "reset\n----\nwas not empty\n")
    path.write_text(stale)
    monkeypatch.setenv(REWRITE_ENV, "1")
    run_transcript(path, counter())
    assert path.read_text() == TEXT
    monkeypatch.delenv(REWRITE_ENV)
    run_transcript(path, counter())


def test_a_handler_error_names_the_command_line(tmp_path, monkeypatch):
    monkeypatch.delenv(REWRITE_ENV, raising=False)
    path = tmp_path / "t.txt"
    path.write_text("add n=1\nnope\n----\n")
    with pytest.raises(KeyError) as failure:
        run_transcript(path, counter())
    assert any("t.txt:2: nope" in note for note in failure.value.__notes__)
