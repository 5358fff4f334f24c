"""Edge: running the pipeline on a Kubeflow cluster: connect, parameters, offline spec and backend-version checks, submit, and the doctor that checks a cluster before a run."""
