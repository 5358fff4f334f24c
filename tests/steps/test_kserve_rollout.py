"""Push rolls the KServe InferenceService: a merge patch of the predictor's pod annotations, on the wire,
against the Kubernetes contract server (tests/k8s_contract_server.py)."""

from __future__ import annotations

import copy

import pytest
import yaml

from imgclf import kube, settings
from imgclf.steps import rollout as kserve_rollout
from imgclf.errors import UserError, run_cli
from tests.k8s_contract_server import ContractServer

ISVC_CRD = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "inferenceservices.serving.kserve.io"},
            "spec": {"group": "serving.kserve.io", "versions": [{"name": "v1beta1"}]}}


def _isvc(namespace=settings.SERVING_NAMESPACE) -> dict:
    """Our generated InferenceService as it sits in the cluster after `kubectl apply`."""
    isvc = copy.deepcopy(yaml.safe_load((settings.MANIFESTS_DIR / "base" / "inferenceservice.yaml").read_text()))
    isvc["metadata"].update(namespace=namespace, generation=1)
    return isvc


def _server(*objects) -> ContractServer:
    server = ContractServer(known_namespaces=(settings.SERVING_NAMESPACE,))
    for obj in (ISVC_CRD, *objects):
        server.put(obj)
    return server


def test_roll_patches_the_predictor_pod_annotations():
    isvc = _isvc()
    base = isvc["spec"]["predictor"]["model"]["storageUri"]
    with _server(isvc) as server:
        api = kube.api_client(server.url)
        line = kserve_rollout.roll_after_push(settings.MODEL_NAME, {"version": 3, "uri": f"{base}/3"}, api)
        again = kserve_rollout.roll_after_push(f"{settings.SERVING_NAMESPACE}/{settings.MODEL_NAME}",
                                               {"version": 4, "uri": f"{base}/4"}, api)
        stored = server.get("serving.kserve.io/v1beta1", "InferenceService", settings.MODEL_NAME,
                            settings.SERVING_NAMESPACE)
        [first_patch, _] = server.patches
    path, content_type, body = first_patch
    assert path.endswith(f"/namespaces/{settings.SERVING_NAMESPACE}/inferenceservices/{settings.MODEL_NAME}")
    assert content_type == "application/merge-patch+json"
    assert body == {"spec": {"predictor": {"annotations": {"imgclf.io/pushed-version": "3",
                                                           "imgclf.io/pushed-uri": f"{base}/3"}}}}
    assert line == (f"rolled InferenceService {settings.SERVING_NAMESPACE}/{settings.MODEL_NAME} to version 3 "
                    "(was unset; KServe starts a new revision)")
    assert "to version 4 (was 3;" in again and "warning" not in again
    predictor = stored["spec"]["predictor"]
    assert predictor["annotations"]["imgclf.io/pushed-version"] == "4"
    assert predictor["model"] == isvc["spec"]["predictor"]["model"]  # storageUri and the rest untouched
    assert stored["metadata"]["generation"] == 3  # each patch changed the spec: a new revision each time


def test_roll_warns_when_the_isvc_serves_another_base():
    with _server(_isvc()) as server:
        line = kserve_rollout.roll_after_push(settings.MODEL_NAME, {"version": 1, "uri": "gs://other/models/x/1"},
                                              kube.api_client(server.url))
    assert "warning: it serves storageUri" in line and "not gs://other/models/x" in line


@pytest.mark.parametrize("target, seed, needle", [
    ("nope", True, f"InferenceService {settings.SERVING_NAMESPACE}/nope not found"),
    ("ghost-ns/fashion-mnist", True, "InferenceService ghost-ns/fashion-mnist not found"),
    (settings.MODEL_NAME, False, "KServe is not installed: the API server does not serve serving.kserve.io/v1beta1"),
    ("a/b/c", True, "InferenceService 'a/b/c': expected NAME or NAMESPACE/NAME"),
])
def test_roll_failures_are_one_line(target, seed, needle):
    server = _server(_isvc()) if seed else ContractServer(known_namespaces=(settings.SERVING_NAMESPACE,))
    with server:
        with pytest.raises(UserError) as info:
            kserve_rollout.roll_after_push(target, {"version": 1, "uri": ""}, kube.api_client(server.url))
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_push_cli_rolls_after_a_successful_push(trained_model, small_dataset, tmp_path, monkeypatch, capsys):
    from imgclf.steps import evaluate as evaluate_step
    from imgclf.steps import push as push_step

    base = tmp_path / "serving"
    evaluate_step.evaluate(small_dataset, trained_model, str(tmp_path / "e"), str(base), "m", 0.5, 0.01)
    with _server(_isvc()) as server:
        real = kube.api_client
        monkeypatch.setattr(kube, "api_client", lambda host=None, token=None: real(server.url))
        argv = ["--model", trained_model, "--blessing", str(tmp_path / "e" / "blessing.json"),
                "--push-base", str(base), "--model-name", "m", "--rollout-inferenceservice", settings.MODEL_NAME]
        assert run_cli(push_step.main, argv) == 0
        annotations = server.get("serving.kserve.io/v1beta1", "InferenceService", settings.MODEL_NAME,
                                 settings.SERVING_NAMESPACE)["spec"]["predictor"]["annotations"]
    out = capsys.readouterr().out
    assert "pushed version 1" in out and "to version 1 (was unset" in out
    assert annotations == {"imgclf.io/pushed-version": "1", "imgclf.io/pushed-uri": str(base / "m" / "1")}
