"""Edge: the TF Serving compatible REST server, its request payloads, and a client."""
