"""The serving manifests: fresh, valid (core strict, KServe CRD schema, TF GPU rule, PSS restricted)."""

import copy

import pytest

from imgclf.deploy import manifest_checks as mc
from imgclf import settings
from imgclf.deploy import manifests


def _rendered(overlay):
    return mc.load_docs(manifests.rendered_path(overlay))


def _kind(docs, kind):
    return copy.deepcopy(next(d for d in docs if d["kind"] == kind))


def test_committed_manifests_are_fresh_and_valid():
    errors, notes = mc.check_all()
    assert errors == [], "\n".join(errors)
    assert any("6 objects checked" in n for n in notes)


@pytest.mark.parametrize("overlay", manifests.OVERLAYS)
def test_overlays_carry_settings(overlay):
    docs = _rendered(overlay)
    gpu = overlay == "gpu"
    isvc, deploy = _kind(docs, "InferenceService"), _kind(docs, "Deployment")
    model = isvc["spec"]["predictor"]["model"]
    assert model["storageUri"] == f"{settings.SERVING_STORAGE_URI}/{settings.MODEL_NAME}"
    assert model["runtimeVersion"] == (settings.KSERVE_TF_GPU_RUNTIME_VERSION if gpu else settings.KSERVE_TF_RUNTIME_VERSION)
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == (settings.TF_SERVING_GPU_IMAGE if gpu else settings.TF_SERVING_IMAGE)
    assert f"--model_name={settings.MODEL_NAME}" in container["args"]
    assert ("nodeSelector" in deploy["spec"]["template"]["spec"]) == gpu
    assert ("tolerations" in isvc["spec"]["predictor"]) == gpu
    assert all(d["metadata"]["namespace"] == settings.SERVING_NAMESPACE for d in docs)


def test_gpu_without_gpu_runtime_is_rejected():
    isvc = _kind(_rendered("cpu"), "InferenceService")
    isvc["spec"]["predictor"]["model"]["resources"]["limits"]["nvidia.com/gpu"] = 1
    assert any("TensorFlow rule" in e for e in mc.check_inference_service(isvc))
    isvc = _kind(_rendered("gpu"), "InferenceService")
    del isvc["spec"]["predictor"]["model"]["resources"]["limits"]["nvidia.com/gpu"]
    assert any("TensorFlow rule" in e for e in mc.check_inference_service(isvc))


def test_isvc_schema_rejects_typos_and_bad_quantities():
    isvc = _kind(_rendered("cpu"), "InferenceService")
    isvc["spec"]["predictor"]["model"]["storageURI"] = isvc["spec"]["predictor"]["model"].pop("storageUri")
    errors = mc.check_inference_service(isvc)
    assert any("storageURI" in e for e in errors)
    isvc = _kind(_rendered("cpu"), "InferenceService")
    isvc["spec"]["predictor"]["model"]["resources"]["limits"]["memory"] = "2 GB"
    assert any("limits.memory" in e for e in mc.check_inference_service(isvc))


def test_core_objects_are_strict():
    deploy = _kind(_rendered("cpu"), "Deployment")
    deploy["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    assert mc.check_core(deploy)
    hpa = _kind(_rendered("cpu"), "HorizontalPodAutoscaler")
    hpa["spec"]["minReplicas"] = "one"
    assert mc.check_core(hpa)


def test_restricted_pod_security():
    deploy = _kind(_rendered("gpu"), "Deployment")
    assert mc.check_restricted(deploy) == []
    sc = deploy["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    sc["capabilities"]["drop"] = []
    sc["allowPrivilegeEscalation"] = True
    deploy["spec"]["template"]["spec"]["securityContext"]["seccompProfile"] = {"type": "Unconfined"}
    del sc["seccompProfile"], sc["runAsNonRoot"]
    del deploy["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"]
    text = "\n".join(mc.check_restricted(deploy))
    for rule in ("drop must include ALL", "allowPrivilegeEscalation", "seccompProfile", "runAsNonRoot"):
        assert rule in text


def test_a_placeholder_in_what_users_apply_fails_the_check(tmp_path):
    import shutil

    root = tmp_path / "manifests"
    shutil.copytree(settings.MANIFESTS_DIR, root)
    assert mc.placeholder_errors(root) == []
    rendered = manifests.rendered_path("cpu", root)
    rendered.write_text(rendered.read_text().replace("s3://mlpipeline/models", "gs://YOUR_BUCKET/models"))
    [error] = mc.placeholder_errors(root)
    assert error.startswith(f"{rendered}:") and "gs://YOUR_BUCKET/models" in error and "settings.py" in error
    errors, _ = mc.check_all(root, rerender=False)
    assert any("placeholder left" in e for e in errors)


def test_s3_storage_gives_serving_the_credentials_secret():
    docs = _rendered("cpu")
    account = _kind(docs, "ServiceAccount")
    assert account["secrets"] == [{"name": settings.SERVING_S3_SECRET}] and "annotations" not in account["metadata"]
    env = {e["name"]: e for e in _kind(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["S3_ENDPOINT"]["value"] == "minio-service.kubeflow:9000" and env["S3_USE_HTTPS"]["value"] == "0"
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["name"] == settings.SERVING_S3_SECRET
