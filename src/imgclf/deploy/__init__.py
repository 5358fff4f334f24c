"""Edge: serving manifests, their offline checks, and container image builds."""
