"""Helpers for the test suite: pods as OS processes, the CLI, ledgers."""
