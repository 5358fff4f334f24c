"""Tests of imgclf.steps."""
