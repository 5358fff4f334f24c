"""Tests of imgclf.serving."""
