"""Installs the OS-crash model (tests/support/os_crash.py) in a node process started with this
directory on PYTHONPATH and FRESHET_OS_CRASH=1; the data directory is the `--data-dir` argument.
Test-only: never on the path of a real deployment."""

import importlib.util
import os
import sys

if os.environ.get("FRESHET_OS_CRASH") == "1" and "--data-dir" in sys.argv[:-1]:
    _spec = importlib.util.spec_from_file_location(
        "freshet_test_os_crash", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "os_crash.py")
    )
    _module = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_module)
    _module.install(sys.argv[sys.argv.index("--data-dir") + 1])
