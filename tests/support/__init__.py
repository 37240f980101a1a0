"""Helpers shared by test directories (not tests themselves): import as `tests.support.<module>`."""
