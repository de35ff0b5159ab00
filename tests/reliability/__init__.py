"""Reliability suites: crash, concurrency, tamper and hostile input (issue #6)."""
