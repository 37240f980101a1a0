"""Golden transcripts: replay a text file of commands and compare what they print (etcd datadriven).

A transcript is a sequence of blocks. Each block is one or more command lines, a line `----`,
the expected output, and a blank line (or the end of the file):

    # A comment: lines starting with `#` between blocks are kept as they are.
    append leo=10 t=100
    ack replica=2 leo=10 t=120
    ----
    hw=0 leo=10 ...
    hw=10 (moved) leo=10 ...

A command line is a name followed by `key=value` arguments (shell quoting allowed for values with
spaces); a bare `key` is an argument with the value "" (a flag, e.g. `alter_result ok`). The
handler is called once per command, in order, and the outputs of a block's commands are joined
with newlines; that text, without trailing newlines, must equal the expected output. Output may
not contain blank lines (a blank line ends the block).

    run_transcript(path, handle)   # handle(name: str, args: dict[str, str]) -> str

On a mismatch the test fails with a unified diff per block, naming the file and the line of the
block's first command; every block is still run (state carries over), so one message lists all
the differences.

Rewriting: after a deliberate change of behaviour or output format, run the tests with
`FRESHET_REWRITE_TRANSCRIPTS=1` set in the environment, e.g.

    FRESHET_REWRITE_TRANSCRIPTS=1 .venv/bin/python -m pytest tests/unit/server/test_replication_transcripts.py

and the expected outputs in the files are replaced by what the code prints now (commands and
comments are kept). Then read `git diff` of the transcripts: the rewritten text is only as right
as the code that printed it.

Thread-safety: none needed; used from one test at a time.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import shlex
from collections.abc import Callable
from pathlib import Path

REWRITE_ENV = "FRESHET_REWRITE_TRANSCRIPTS"
SEPARATOR = "----"

Handler = Callable[[str, dict[str, str]], str]


@dataclasses.dataclass(frozen=True, slots=True)
class Command:
    """One command line: `name key=value ...`, at 1-based `line` of the file."""

    name: str
    args: dict[str, str]
    line: int


@dataclasses.dataclass(frozen=True, slots=True)
class Block:
    """Commands, their expected output, and where the output sits in the file's lines.

    Attributes:
        commands: in file order (at least one).
        expected: the expected output, lines joined with "\\n" ("" when empty).
        output_start, output_end: the 0-based half-open range of the file's lines holding the
            expected output (the lines after `----`), for rewriting.
    """

    commands: tuple[Command, ...]
    expected: str
    output_start: int
    output_end: int

    @property
    def line(self) -> int:
        return self.commands[0].line


class TranscriptSyntaxError(ValueError):
    """The transcript file is malformed; the message names the file and line."""


def parse_command(text: str, line: int = 0) -> Command:
    """`name key=value flag ...` -> Command. Raises ValueError on an empty line or a duplicate key."""
    words = shlex.split(text)
    if not words:
        raise ValueError("empty command")
    args: dict[str, str] = {}
    for word in words[1:]:
        key, _, value = word.partition("=")
        if not key:
            raise ValueError(f"argument {word!r} has no key")
        if key in args:
            raise ValueError(f"argument {key!r} given twice")
        args[key] = value
    return Command(words[0], args, line)


def parse_transcript(text: str, source: str = "<transcript>") -> list[Block]:
    """Split a transcript into blocks. Raises TranscriptSyntaxError naming `source` and the line."""
    lines = text.splitlines()
    blocks: list[Block] = []
    commands: list[Command] = []
    index = 0
    while index < len(lines):
        stripped = lines[index].strip()
        if stripped == SEPARATOR:
            if not commands:
                raise TranscriptSyntaxError(f"{source}:{index + 1}: {SEPARATOR} with no command before it")
            start = index + 1
            end = start
            while end < len(lines) and lines[end].strip():
                end += 1
            expected = "\n".join(line.rstrip() for line in lines[start:end])
            blocks.append(Block(tuple(commands), expected, start, end))
            commands = []
            index = end
            continue
        if stripped and not stripped.startswith("#"):
            try:
                commands.append(parse_command(stripped, index + 1))
            except ValueError as error:
                raise TranscriptSyntaxError(f"{source}:{index + 1}: {error}") from error
        elif commands:
            where = "a blank line" if not stripped else "a comment"
            raise TranscriptSyntaxError(f"{source}:{index + 1}: {where} inside a block (before {SEPARATOR})")
        index += 1
    if commands:
        raise TranscriptSyntaxError(f"{source}:{commands[0].line}: block has no {SEPARATOR} line")
    return blocks


def _run_block(block: Block, handle: Handler, source: str) -> str:
    outputs = []
    for command in block.commands:
        try:
            output = handle(command.name, dict(command.args))
        except Exception as error:
            error.add_note(f"in {source}:{command.line}: {command.name} {command.args}")
            raise
        output = output.rstrip("\n")
        if output:
            outputs.append(output)
    actual = "\n".join(line.rstrip() for line in "\n".join(outputs).splitlines())
    if any(not line for line in actual.splitlines()):
        raise AssertionError(f"{source}:{block.line}: output contains a blank line, which would end the block")
    return actual


def run_transcript(path: Path, handle: Handler) -> None:
    """Replay `path` with `handle` and assert every block prints its expected output.

    With FRESHET_REWRITE_TRANSCRIPTS=1 in the environment, write the actual outputs into the file
    instead (and pass).

    Raises:
        AssertionError: some block's output differs (one diff per such block).
        TranscriptSyntaxError: the file is malformed.
    """
    text = path.read_text()
    blocks = parse_transcript(text, str(path))
    actuals = [_run_block(block, handle, str(path)) for block in blocks]
    if os.environ.get(REWRITE_ENV) == "1":
        _rewrite(path, text, blocks, actuals)
        return
    failures = []
    for block, actual in zip(blocks, actuals, strict=True):
        if actual != block.expected:
            diff = difflib.unified_diff(
                block.expected.splitlines(), actual.splitlines(), "expected", "actual", lineterm=""
            )
            commands = "\n".join(f"    {c.name} {' '.join(f'{k}={v}' if v else k for k, v in c.args.items())}"
                                 for c in block.commands)
            failures.append(f"{path}:{block.line}: output differs for\n{commands}\n" + "\n".join(diff))
    if failures:
        raise AssertionError(
            f"{len(failures)} of {len(blocks)} blocks differ (rewrite with {REWRITE_ENV}=1, then review the diff)\n\n"
            + "\n\n".join(failures)
        )


def _rewrite(path: Path, text: str, blocks: list[Block], actuals: list[str]) -> None:
    lines = text.splitlines()
    out: list[str] = []
    cursor = 0
    for block, actual in zip(blocks, actuals, strict=True):
        out.extend(lines[cursor:block.output_start])
        out.extend(actual.splitlines())
        cursor = block.output_end
    out.extend(lines[cursor:])
    new_text = "\n".join(out) + "\n"
    if new_text != text:
        path.write_text(new_text)
