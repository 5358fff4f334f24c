"""Test suite: step functions on small real data, the local DAG end to end, and contract tests."""
