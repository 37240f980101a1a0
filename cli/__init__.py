"""The `freshet` command line: a thin typer app that parses, calls client/server, and renders."""
