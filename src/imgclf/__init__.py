"""imgclf: an image-classification MLOps pipeline for Kubeflow (ingest, validate, tune, train, evaluate, push, serve)."""

__version__ = "0.1.0"
