"""Regenerate the committed Python bindings from the .proto files.

Usage (from anywhere, with the dev extra installed):

    python proto/generate.py            # rewrite proto/freshet/v1/*_pb2*.py in place
    python proto/generate.py --out DIR  # write to DIR instead (the drift test compares the two)

The bindings are committed so that `pip install freshet` needs no protoc. A unit test regenerates
them into a temporary directory and fails when they differ from the committed files.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

PROTO_ROOT = pathlib.Path(__file__).resolve().parent


def proto_files() -> list[pathlib.Path]:
    """Every .proto of the wire contract, sorted so generation order is stable."""
    return sorted((PROTO_ROOT / "freshet" / "v1").glob("*.proto"))


def generate(out_dir: pathlib.Path) -> None:
    """Compile every .proto under proto/ into `out_dir` (messages, gRPC stubs and .pyi stubs)."""
    import importlib.resources

    from grpc_tools import protoc  # dev-only dependency

    include = str(importlib.resources.files("grpc_tools") / "_proto")
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *(str(p.relative_to(PROTO_ROOT)) for p in proto_files()),
    ]
    status = protoc.main(args)
    if status != 0:
        raise SystemExit(f"protoc failed with status {status}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=pathlib.Path, default=PROTO_ROOT, help="output root (default: proto/)")
    options = parser.parse_args()
    generate(options.out)
    print(f"generated {len(proto_files())} .proto files into {options.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
