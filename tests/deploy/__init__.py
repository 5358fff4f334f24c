"""Tests of imgclf.deploy."""
