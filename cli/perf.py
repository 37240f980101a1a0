"""`freshet perf`: performance tools.

`freshet perf storage` benchmarks the storage engine against raw file I/O on this machine and
prints one JSON line (see `freshet.storage.bench`). The benchmark module is imported only when the
command runs, so the CLI starts fast.
"""

from __future__ import annotations

import json

import typer

app = typer.Typer(name="perf", help="Measure Freshet's performance.", no_args_is_help=True)


@app.command("storage")
def storage(
    quick: bool = typer.Option(False, "--quick", help="A short run: smaller logs and one repeat."),
    directory: str | None = typer.Option(
        None, "--dir", help="Parent directory of the temporary benchmark files (default: the temp dir)."
    ),
) -> None:
    """Benchmark the storage engine (append, read, random read, codec) against raw file I/O.

    Prints one JSON line on stdout; progress goes to stderr. Temporary files are removed.
    """
    from freshet.storage import bench

    typer.echo(json.dumps(bench.run(quick=quick, directory=directory)))
