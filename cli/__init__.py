"""The `freshet` command line: a thin typer app that parses, calls client/server, and renders."""

import os

# gRPC's C core prints INFO lines on stderr (a refused TLS handshake, for one) unless told
# otherwise; the CLI promises one error line. It must be set before grpc initializes, hence here,
# in the package every `freshet` command imports first. An explicit GRPC_VERBOSITY still wins.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
