"""Helpers for tests, benchmarks and users' own tests: a real Kafka broker, fakes."""
