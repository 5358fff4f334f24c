"""Edge: Katib Experiment generation, the admission-webhook rules, and the Kubernetes calls."""
