"""The test tree. A regular package so `tests.support` (shared helpers) and `tests.bench` import by name."""
