"""Tests of imgclf.data."""
