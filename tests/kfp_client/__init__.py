"""Tests of imgclf.kfp_client."""
