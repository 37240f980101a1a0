"""Golden transcripts (etcd's `datadriven`): replay a text file of steps and compare the output.

A transcript file is a sequence of steps. Each step is one command line, a `----` line, and the
expected output: every line up to the next blank line (or the end of the file). Lines starting
with `#` and blank lines between steps are kept as they are (comments for the reader):

    # broker 2 stops heartbeating
    tick t=6000
    ----
    proposed FENCE: fencing broker 2 (session expired): ...
    brokers: 1=unfenced 2=fenced 3=unfenced

A command line is a verb and `key=value` arguments separated by spaces (a bare word is a key with
the value ""); values contain no spaces. The handler is called once per step, in order, as
`handler(verb, {key: value})`, and returns the step's output (lines without blank lines: a blank
line would end the step). State lives in the handler (a closure or an object), not here.

`run_transcript` fails with a unified diff of the whole file when any step's output differs. With
the environment variable FRESHET_REWRITE_TRANSCRIPTS=1 it writes the actual output into the file
instead (after a deliberate change; review the diff with git) and passes.

Imports only the standard library. Thread-safety: functions are pure apart from the file
read/written by run_transcript; call them from one thread per file.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import pathlib
from collections.abc import Callable

REWRITE_ENV = "FRESHET_REWRITE_TRANSCRIPTS"
SEPARATOR = "----"

Handler = Callable[[str, dict[str, str]], str]


@dataclasses.dataclass(frozen=True, slots=True)
class Step:
    """One step of a transcript. Thread-safe (immutable).

    Attributes:
        line_number: 1-based line of the command in the file (for messages).
        command: the command line as written.
        verb: its first word.
        args: its `key=value` arguments.
        expected: the expected output lines.
    """

    line_number: int
    command: str
    verb: str
    args: dict[str, str]
    expected: tuple[str, ...]


# A parsed file: comment and blank lines (str) kept in place, and steps.
Part = str | Step


class TranscriptSyntaxError(ValueError):
    """The file is not a well-formed transcript: names the file, the line and the problem."""


def parse_command(line: str) -> tuple[str, dict[str, str]]:
    """Split "verb k=v k2=v2 word" into ("verb", {"k": "v", "k2": "v2", "word": ""}).

    Raises:
        ValueError: an empty line or a key given twice.
    """
    words = line.split()
    if not words:
        raise ValueError("empty command")
    args: dict[str, str] = {}
    for word in words[1:]:
        key, _, value = word.partition("=")
        if key in args:
            raise ValueError(f"argument {key!r} given twice")
        args[key] = value
    return words[0], args


def parse_transcript(text: str, name: str = "<transcript>") -> list[Part]:
    """Parse a transcript's text into comment/blank lines and steps (see the module docstring).

    Raises:
        TranscriptSyntaxError: a command without `----`, a malformed command line.
    """
    lines = text.splitlines()
    parts: list[Part] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if not line.strip() or line.startswith("#"):
            parts.append(line)
            index += 1
            continue
        if index + 1 >= len(lines) or lines[index + 1] != SEPARATOR:
            raise TranscriptSyntaxError(f"{name}:{index + 1}: {line!r} is not followed by a {SEPARATOR!r} line")
        try:
            verb, args = parse_command(line)
        except ValueError as error:
            raise TranscriptSyntaxError(f"{name}:{index + 1}: {error}") from None
        end = index + 2
        while end < len(lines) and lines[end].strip():
            end += 1
        parts.append(Step(index + 1, line, verb, args, tuple(lines[index + 2 : end])))
        index = end
    return parts


def render_transcript(parts: list[Part], outputs: dict[int, tuple[str, ...]] | None = None) -> str:
    """The text of a transcript; a step's output is outputs[its line number] when given, else its
    expected output."""
    lines: list[str] = []
    for part in parts:
        if isinstance(part, str):
            lines.append(part)
            continue
        output = part.expected if outputs is None else outputs[part.line_number]
        lines += [part.command, SEPARATOR, *output]
    return "\n".join(lines) + "\n"


def _output_lines(step: Step, output: str) -> tuple[str, ...]:
    lines = tuple(line.rstrip() for line in output.rstrip("\n").split("\n")) if output.strip() else ()
    assert all(lines), f"line {step.line_number} ({step.command!r}): the handler's output has a blank line"
    return lines


def run_transcript(path: str | os.PathLike[str], handler: Handler) -> None:
    """Replay the transcript at `path` through `handler` and compare every step's output.

    Args:
        path: the transcript file.
        handler: called as handler(verb, args) for each step in order; returns its output.

    Raises:
        AssertionError: some output differs (the message is a diff, expected -> actual), unless
            FRESHET_REWRITE_TRANSCRIPTS=1, in which case the file is rewritten with the actual
            output.
        TranscriptSyntaxError: the file is malformed.
    """
    file = pathlib.Path(path)
    expected_text = file.read_text()
    parts = parse_transcript(expected_text, str(file))
    steps = [part for part in parts if isinstance(part, Step)]
    assert steps, f"{file}: no steps"
    outputs = {step.line_number: _output_lines(step, handler(step.verb, dict(step.args))) for step in steps}
    actual_text = render_transcript(parts, outputs)
    if actual_text == render_transcript(parts):
        return
    if os.environ.get(REWRITE_ENV) == "1":
        file.write_text(actual_text)
        return
    diff = difflib.unified_diff(
        render_transcript(parts).splitlines(keepends=True),
        actual_text.splitlines(keepends=True),
        fromfile=f"{file} (expected)",
        tofile=f"{file} (actual)",
    )
    raise AssertionError(
        f"transcript {file} differs from the actual output (rerun with {REWRITE_ENV}=1 to accept it):\n" + "".join(diff)
    )
