"""The pipeline DAG (wiring only), its compiler entry point and the local runner."""
