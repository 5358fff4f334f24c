"""Tests of imgclf.katib."""
