"""Connect to a KFP v2 API with one of four auth modes, and turn its failures into one-line UserErrors.

Auth modes (tried in this order by `auto`):
  token   bearer token from --token-file or env KFP_TOKEN (kfp.Client existing_token)
  cookie  Dex/Istio session cookie from --cookie-file or env KFP_COOKIE (kfp.Client cookies)
  sa      in-cluster service account token volume (kfp.client.ServiceAccountTokenVolumeCredentials;
          path from env KF_PIPELINES_SA_TOKEN_PATH or /var/run/secrets/kubeflow/pipelines/token)
  none    no credentials (port-forward to ml-pipeline-ui, single-user installs)
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kfp
import kfp_server_api
from kfp import client as kfp_client

from imgclf.errors import UserError

AUTH_MODES = ("auto", "token", "cookie", "sa", "none")
HEALTHZ_PATH = "/apis/v2beta1/healthz"
PREFLIGHT_TIMEOUT_S = 10


@dataclass
class Auth:
    """The chosen auth mode, the kfp.Client keyword arguments and the headers it will send."""

    mode: str
    client_kwargs: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


def _read_secret(path: Path | None, env: str) -> str | None:
    if path is not None:
        if not path.is_file():
            raise UserError(f"{path}: no such file")
        return path.read_text(encoding="utf-8").strip()
    return os.environ.get(env) or None


def resolve_auth(mode: str, token_file: Path | None = None, cookie_file: Path | None = None) -> Auth:
    """Pick credentials for `mode` (see module docstring); UserError when the chosen mode has none."""
    token = _read_secret(token_file, "KFP_TOKEN") if mode in ("auto", "token") else None
    cookie = _read_secret(cookie_file, "KFP_COOKIE") if mode in ("auto", "cookie") else None
    sa_path = Path(os.environ.get(kfp_client.KF_PIPELINES_SA_TOKEN_ENV, kfp_client.KF_PIPELINES_SA_TOKEN_PATH))
    if mode == "auto":
        mode = "token" if token else "cookie" if cookie else "sa" if sa_path.is_file() else "none"
    if mode == "token":
        if not token:
            raise UserError("auth mode 'token' needs --token-file or env KFP_TOKEN")
        return Auth("token", {"existing_token": token}, {"Authorization": f"Bearer {token}"})
    if mode == "cookie":
        if not cookie:
            raise UserError("auth mode 'cookie' needs --cookie-file or env KFP_COOKIE (e.g. authservice_session=...)")
        return Auth("cookie", {"cookies": cookie}, {"Cookie": cookie})
    if mode == "sa":
        if not sa_path.is_file():
            raise UserError(f"auth mode 'sa' needs a service account token at {sa_path} (run inside the cluster)")
        credentials = kfp.client.ServiceAccountTokenVolumeCredentials(path=str(sa_path))
        token = sa_path.read_text(encoding="utf-8").strip()
        return Auth("sa", {"credentials": credentials}, {"Authorization": f"Bearer {token}"})
    return Auth("none")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102 (urllib hook)
        return None


def _auth_error(host: str, auth: Auth, status: int | str, detail: str = "") -> UserError:
    hint = {
        "none": "pass a token (KFP_TOKEN / --token-file) or a session cookie (KFP_COOKIE / --cookie-file)",
        "token": "the bearer token was rejected or has expired",
        "cookie": "the session cookie was rejected or has expired: log in again and copy a fresh one",
        "sa": "the service account token was rejected: check its audience (pipelines.kubeflow.org) and RBAC",
    }[auth.mode]
    extra = f" ({detail})" if detail else ""
    return UserError(f"KFP at {host} refused auth mode '{auth.mode}' with {status}{extra}: {hint}")


def preflight(host: str, auth: Auth) -> dict[str, Any]:
    """GET the healthz endpoint with the chosen credentials; returns its JSON.

    Fails fast with one line for an unreachable host, a login redirect, 401/403 or
    a host that does not serve the KFP v2 API (kfp.Client would retry for 25 s).
    """
    request = urllib.request.Request(host + HEALTHZ_PATH, headers=auth.headers)
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=PREFLIGHT_TIMEOUT_S) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise _auth_error(host, auth, f"HTTP {exc.code}") from None
        if 300 <= exc.code < 400:
            where = exc.headers.get("Location", "a login page")
            raise _auth_error(host, auth, f"a redirect to {where}", "not logged in") from None
        raise UserError(f"{host} does not serve the KFP v2 API (GET {HEALTHZ_PATH} answered HTTP {exc.code})") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(f"cannot reach KFP at {host}: {reason} (check --host / KFP_HOST, or the port-forward)") from None
    try:
        return json.loads(body or b"{}")
    except json.JSONDecodeError:
        raise UserError(f"{host}{HEALTHZ_PATH} did not answer JSON: is --host the KFP endpoint?") from None


def make_client(host: str, auth: Auth, namespace: str | None) -> kfp.Client:
    """A kfp.Client for host with the chosen credentials; namespace '' for single-user installs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "only works with KFP v2.0.0-beta.2 and later"
        return kfp.Client(host=host, namespace=namespace or "", **auth.client_kwargs)


def _server_message(exc: kfp_server_api.ApiException) -> str:
    try:
        body = json.loads(exc.body or b"{}")
    except (json.JSONDecodeError, TypeError):
        return str(exc.body or exc.reason or "").strip()[:200]
    return str(body.get("message") or body.get("error") or body.get("error_message") or exc.reason or "")


def explain_api_error(exc: Exception, host: str, auth: Auth, namespace: str | None, action: str) -> UserError:
    """One line for a failure of a kfp.Client call made while doing `action`."""
    if not isinstance(exc, kfp_server_api.ApiException):
        return UserError(f"cannot reach KFP at {host} while {action}: {type(exc).__name__}")
    message = _server_message(exc)
    mentions_namespace = bool(namespace) and "namespace" in message.lower()
    if exc.status == 401:
        return _auth_error(host, auth, "HTTP 401", message)
    if exc.status in (403, 404) and mentions_namespace:
        return UserError(
            f"KFP at {host} rejected namespace '{namespace}' (HTTP {exc.status}, auth mode '{auth.mode}'): "
            f"it does not exist or you have no Kubeflow profile access to it ({message})"
        )
    if exc.status == 403:
        return _auth_error(host, auth, "HTTP 403", message)
    if not exc.status:
        return UserError(f"cannot reach KFP at {host} while {action}: {exc.reason}")
    return UserError(f"KFP at {host} failed while {action}: HTTP {exc.status} {message}".rstrip())
