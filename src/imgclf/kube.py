"""The Kubernetes API client every cluster-facing module shares (Katib, KServe roll-out, doctor)."""

from __future__ import annotations

import os
from pathlib import Path

from imgclf.errors import UserError

NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def api_client(host: str | None = None, token: str | None = None):
    """A kubernetes ApiClient: `host` (tests, `kubectl proxy`) or in-cluster config, else ~/.kube/config."""
    from kubernetes import client, config

    if host:
        cfg = client.Configuration()
        cfg.host = host
        if token:
            cfg.api_key = {"authorization": f"Bearer {token}"}
        return client.ApiClient(cfg)
    try:
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config()
        else:
            config.load_kube_config()
    except config.ConfigException as exc:
        raise UserError(f"no Kubernetes configuration (in-cluster or kubeconfig): {exc}") from None
    return client.ApiClient()


def current_namespace(default: str = "kubeflow") -> str:
    """The pod's own namespace (the Kubeflow profile a pipeline runs in), else `default`."""
    return NAMESPACE_FILE.read_text().strip() if NAMESPACE_FILE.exists() else default
