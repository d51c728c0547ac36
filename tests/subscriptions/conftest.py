"""Fixtures of the Subscriptions tests (defined in harness.py, shared with tests/population/test_queue*.py): a
real FHIR server (sekmet, which sends the notifications) and a PostgreSQL database per test."""
from subscriptions.harness import pg_url, sekmet  # noqa: F401 - fixtures

