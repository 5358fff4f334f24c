"""Core data layer: IDX files, the Dataset artifact, storage (local, gs://, s3://), the version layout."""
