"""Foundation checks: packaging, the committed wire bindings, layering, and the CRC extension.

These guard the promises the README makes about setting up a fresh machine: imports work from any
directory after either kind of install, the generated protobuf code matches the .proto files, the
layering of DESIGN.md holds, and CRC-32C runs in C.
"""

from __future__ import annotations

import filecmp
import importlib
import os
import pathlib
import re
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
PACKAGES = [
    "freshet.storage",
    "freshet.metadata",
    "freshet.server",
    "freshet.client",
    "freshet.cli",
    "freshet.v1",
]


def test_crcmod_uses_its_c_extension():
    """CRC-32C is on every produce and every recovery: the pure-Python fallback is ~100x slower."""
    crcmod_impl = importlib.import_module("crcmod.crcmod")
    assert crcmod_impl._usingExtension is True


def test_generated_bindings_match_proto_files(tmp_path):
    """Regenerate every binding into a temp dir; any difference means someone forgot to regenerate."""
    subprocess.run([sys.executable, str(REPO / "proto" / "generate.py"), "--out", str(tmp_path)], check=True)
    generated = sorted(p.name for p in (tmp_path / "freshet" / "v1").iterdir())
    committed = sorted(
        p.name
        for p in (REPO / "proto" / "freshet" / "v1").iterdir()
        if re.search(r"_pb2(_grpc)?\.pyi?$", p.name)
    )
    assert generated == committed, "run: python proto/generate.py"
    _, mismatch, errors = filecmp.cmpfiles(
        tmp_path / "freshet" / "v1", REPO / "proto" / "freshet" / "v1", generated, shallow=False
    )
    assert mismatch == [] and errors == [], (
        f"stale bindings {mismatch + errors}: run python proto/generate.py"
    )


def test_layering_contracts_hold():
    """DESIGN.md's import rules, as import-linter contracts in pyproject.toml."""
    lint_imports = pathlib.Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def _import_all_from(cwd: pathlib.Path, env: dict[str, str]) -> list[str]:
    code = "import importlib,sys\nfor m in sys.argv[1:]:\n    print(importlib.import_module(m).__file__)"
    result = subprocess.run(
        [sys.executable, "-c", code, *PACKAGES], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_installed_packages_import_from_outside_the_repo(tmp_path):
    """The current install (editable in development) serves every freshet.* package from any cwd."""
    files = _import_all_from(tmp_path, dict(os.environ))
    assert len(files) == len(PACKAGES)


@pytest.mark.slow
def test_regular_install_imports_from_outside_the_repo(tmp_path):
    """`pip install .` (a real wheel, not editable) maps the folders to freshet.* correctly."""
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(REPO),
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    env = dict(os.environ)
    # The target dir first, then this interpreter's site-packages for the dependencies only: the
    # editable finder must not be on the path, or we would test the editable install again.
    env["PYTHONPATH"] = str(target)
    env["PYTHONNOUSERSITE"] = "1"
    files = _import_all_from(tmp_path, env | {"PYTHONSAFEPATH": "1"})
    for path in files:
        assert path.startswith(str(target)), f"{path} was not imported from the installed wheel"
    assert (target / "freshet" / "v1" / "common.proto").exists()


def test_ci_runs_the_readme_test_command():
    """.ci/run must run exactly the README's test command, so the README cannot drift from CI."""
    readme = (REPO / "README.md").read_text()
    commands = re.findall(r"```sh\n(.*?)\n```", readme, flags=re.S)
    test_command = next(c for c in commands if "pytest" in c)
    ci_lines = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    position = 0
    for step in test_command.split(" && "):
        assert step in ci_lines[position:], f".ci/run does not run {step!r} (in README order)"
        position = ci_lines.index(step, position) + 1


def test_ruff_finds_nothing():
    """Lint (pyflakes, pycodestyle, import order, bugbear, pyupgrade) is part of the suite."""
    ruff = pathlib.Path(sys.executable).parent / "ruff"
    result = subprocess.run([str(ruff), "check", "."], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
