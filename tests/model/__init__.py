"""Tests of imgclf.model."""
