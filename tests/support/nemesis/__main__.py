"""`python -m tests.support.nemesis ...`: one nemesis run (tests/support/nemesis/run.py)."""

import sys

from tests.support.nemesis.run import main

sys.exit(main())
