"""imgclf-doctor against the KFP and Kubernetes contract servers, seeded with a good cluster and with
broken ones: each broken state prints its one FAIL line with the exact fix, and the exit status is 1."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from imgclf import settings
from imgclf.kfp_client import doctor
from imgclf.errors import run_cli
from tests.k8s_contract_server import ContractServer as K8sServer
from tests.kfp_contract_server import ContractServer as KfpServer
from tests.kfp_contract_server import KfpState

NS, TOKEN = "team-a", "s3cret"
C = settings.CLUSTER
GPU_LABEL = f"{C.gpu_node_selector_key}={C.gpu_node_selector_value}"


def _ns(name, labels=None):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}


def _crd(name, version):
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": name},
            "spec": {"group": name.split(".", 1)[1], "versions": [{"name": version}]}}


def good_cluster() -> list[dict]:
    return [
        _ns(NS, {"katib.kubeflow.org/metrics-collector-injection": "enabled"}),
        _ns(settings.SERVING_NAMESPACE), _ns("knative-serving"), _ns("kserve"),
        *[_crd(f"{p}.kubeflow.org", "v1beta1") for p in ("experiments", "suggestions", "trials")],
        _crd("inferenceservices.serving.kserve.io", "v1beta1"),
        _crd("clusterservingruntimes.serving.kserve.io", "v1alpha1"),
        _crd("servingruntimes.serving.kserve.io", "v1alpha1"),
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
         "metadata": {"name": settings.KATIB_DATA_PVC, "namespace": NS},
         "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}},
         "status": {"phase": "Bound"}},
        {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "ClusterServingRuntime",
         "metadata": {"name": "kserve-tensorflow-serving"},
         "spec": {"supportedModelFormats": [{"name": "tensorflow", "version": "2", "autoSelect": True}],
                  "containers": [{"name": "kserve-container", "image": "tensorflow/serving:2.6.2"}]}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "inferenceservice-config", "namespace": "kserve"},
         "data": {"deploy": '{"defaultDeploymentMode": "Serverless"}'}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "config-features", "namespace": "knative-serving"},
         "data": {"kubernetes.podspec-nodeselector": "enabled", "kubernetes.podspec-tolerations": "enabled"}},
        {"apiVersion": "v1", "kind": "Node",
         "metadata": {"name": "gpu-1", "labels": {C.gpu_node_selector_key: C.gpu_node_selector_value}},
         "spec": {"taints": [{"key": C.gpu_toleration_key, "value": "present", "effect": "NoSchedule"}]},
         "status": {"allocatable": {"cpu": "8", C.gpu_accelerator: "1"}}},
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "cpu-1", "labels": {}},
         "status": {"allocatable": {"cpu": "8"}}},
    ]


def _find(objects, kind, name):
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def _drop(kind, name):
    return lambda objs, kfp, base: objs.remove(_find(objs, kind, name))


def _edit(kind, name, change):
    return lambda objs, kfp, base: change(_find(objs, kind, name))


def _run(tmp_path, capsys, mutate=None, extra=()):
    objects, kfp_state = good_cluster(), KfpState(tag_name="2.5.0", multi_user=True, namespaces=(NS,),
                                                  required_token=TOKEN, healthz_public=True)
    base = tmp_path / "models"
    (base / "m" / "1").mkdir(parents=True)
    (base / "m" / "1" / "saved_model.pb").write_bytes(b"\x08\x01")
    (base / "m" / "2").mkdir()
    (base / "m" / "2" / "saved_model.pb").write_bytes(b"\x08\x01")
    if mutate:
        mutate(objects, kfp_state, base)
    (tmp_path / "token").write_text(TOKEN)
    k8s = K8sServer(known_namespaces=())
    for obj in objects:
        k8s.put(copy.deepcopy(obj))
    with KfpServer(kfp_state) as kfp, k8s:
        argv = ["--host", kfp.url, "--namespace", NS, "--auth", "token", "--token-file", str(tmp_path / "token"),
                "--kube-host", k8s.url, "--push-base", str(base), "--model-name", "m", *extra]
        code = run_cli(doctor.main, argv)
    return code, capsys.readouterr().out.splitlines()


def test_good_cluster_passes_every_check(tmp_path, capsys):
    code, lines = _run(tmp_path, capsys)
    assert code == 0, "\n".join(lines)
    checks = [line.split(":")[0].split(None, 1) for line in lines[:-1]]
    assert [status for status, _ in checks] == ["ok"] * len(checks), "\n".join(lines)
    assert [name for _, name in checks] == [
        "kfp api", "kfp version", "kfp auth", "kfp namespace", "katib crds", "katib namespace",
        f"pvc {settings.KATIB_DATA_PVC}", "kserve crd", "kserve tf-runtime", "kserve placement",
        "gpu nodes", "gpu allocatable", "gpu taints", "push readable", "push writable", "push versions"]
    assert lines[-1] == "16 of 16 checks passed"
    assert "backend 2.5.0 >= 2.5.0" in lines[1] and "ClusterServingRuntime kserve-tensorflow-serving" in lines[8]
    assert lines[-2].endswith("servable version(s) 1, 2")


def _raw_mode(objs, kfp, base):
    _find(objs, "ConfigMap", "inferenceservice-config")["data"]["deploy"] = '{"defaultDeploymentMode": "RawDeployment"}'
    _find(objs, "ConfigMap", "config-features")["data"] = {}


def test_raw_deployment_mode_needs_no_knative_flags(tmp_path, capsys):
    code, lines = _run(tmp_path, capsys, _raw_mode)
    assert code == 0 and "ok    kserve placement: deployment mode RawDeployment: nodeSelector/tolerations allowed" in lines


def test_skipping_gpu_skips_the_knative_flags(tmp_path, capsys):
    code, lines = _run(tmp_path, capsys, BROKEN["knative-flags-off"][0], ["--skip", "gpu"])
    assert code == 0, "\n".join(lines)
    assert "skip  kserve placement: not needed without the GPU variant (--skip gpu)" in lines
    assert not any(line.startswith("ok    gpu") for line in lines)


def _set(attr, value):
    return lambda objs, kfp, base: setattr(kfp, attr, value)


def _incomplete_newest(objs, kfp, base):
    (base / "m" / "3").mkdir()


def _saved_model_at_base(objs, kfp, base):
    (base / "m" / "saved_model.pb").write_bytes(b"\x08\x01")


PATCH = '{"data":{"kubernetes.podspec-nodeselector":"enabled","kubernetes.podspec-tolerations":"enabled"}}'
FIX_PVC = (f"recreate {settings.KATIB_DATA_PVC} with accessModes [ReadWriteMany] (a class that offers it: NFS, GKE "
           "Filestore, EFS, Azure Files), or keep every trial on the node holding it (parallel trials 1 and a node "
           "selector)")

BROKEN = {
    "old-kfp": (_set("tag_name", "2.4.1"), "FAIL  kfp version: backend 2.4.1 is older than the minimum 2.5.0 | fix: "
                "upgrade Kubeflow Pipelines to >= 2.5.0 (Kubeflow >= 1.10)"),
    "bad-token": (_set("required_token", "other"), "FAIL  kfp auth: HTTP 401 with auth mode 'token' | fix: the bearer "
                  "token was rejected or expired: create a fresh one (kubectl create token ...)"),
    "no-profile": (_set("namespaces", ("someone-else",)), f"FAIL  kfp namespace: KFP refused namespace '{NS}' "
                   "(HTTP 403) | fix: use a Kubeflow profile namespace you own or were added to as a contributor "
                   "(kubectl get profiles)"),
    "no-katib": (_drop("CustomResourceDefinition", "trials.kubeflow.org"), "FAIL  katib crds: missing CRD(s) "
                 "trials.kubeflow.org | fix: install Katib (kubectl apply -k \"github.com/kubeflow/katib.git/manifests/"
                 "v1beta1/installs/katib-standalone?ref=v0.19.0\") or run the pipeline with tuner=keras-tuner"),
    "no-label": (_edit("Namespace", NS, lambda o: o["metadata"].update(labels={})), f"FAIL  katib namespace: namespace "
                 f"'{NS}' lacks label katib.kubeflow.org/metrics-collector-injection=enabled (trials would end with "
                 f"no metrics) | fix: kubectl label namespace {NS} katib.kubeflow.org/metrics-collector-injection=enabled"),
    "no-pvc": (_drop("PersistentVolumeClaim", settings.KATIB_DATA_PVC), f"FAIL  pvc {settings.KATIB_DATA_PVC}: PVC "
               f"'{settings.KATIB_DATA_PVC}' not found in namespace '{NS}' | fix: create a ReadWriteMany PVC "
               f"'{settings.KATIB_DATA_PVC}' in {NS} (NFS, Filestore, EFS or Azure Files class), or pass the pipeline "
               "parameter katib_data_pvc"),
    "rwo-pvc": (_edit("PersistentVolumeClaim", settings.KATIB_DATA_PVC,
                      lambda o: o["spec"].update(accessModes=["ReadWriteOnce"])),
                f"FAIL  pvc {settings.KATIB_DATA_PVC}: PVC {NS}/{settings.KATIB_DATA_PVC} (Bound) access ReadWriteOnce: "
                f"trials on other nodes fail with Multi-Attach | fix: {FIX_PVC}"),
    "no-kserve": (_drop("CustomResourceDefinition", "inferenceservices.serving.kserve.io"), "FAIL  kserve crd: missing "
                  "CRD inferenceservices.serving.kserve.io | fix: install KServe (Kubeflow includes it), or serve with "
                  "the plain TF Serving Deployment (manifests/base/tf-serving-deployment.yaml)"),
    "no-tf-runtime": (_edit("ClusterServingRuntime", "kserve-tensorflow-serving",
                            lambda o: o["spec"].update(supportedModelFormats=[{"name": "sklearn"}])),
                      "FAIL  kserve tf-runtime: no ServingRuntime or ClusterServingRuntime for modelFormat tensorflow | "
                      "fix: install KServe's cluster serving runtimes (kserve-cluster-resources; kserve-tensorflow-"
                      f"serving) or add a ServingRuntime for tensorflow in {settings.SERVING_NAMESPACE}"),
    "knative-flags-off": (_edit("ConfigMap", "config-features", lambda o: o.update(data={})),
                          "FAIL  kserve placement: deployment mode Serverless and Knative flag(s) "
                          "kubernetes.podspec-nodeselector, kubernetes.podspec-tolerations not enabled: the GPU "
                          "InferenceService's nodeSelector/tolerations are rejected | fix: kubectl patch "
                          f"configmap/config-features -n knative-serving --type merge -p '{PATCH}'"),
    "no-gpu-label": (_edit("Node", "gpu-1", lambda o: o["metadata"].update(labels={})),
                     f"FAIL  gpu nodes: no node carries label {GPU_LABEL} | fix: kubectl label node <gpu-node> "
                     f"{GPU_LABEL}, or set ClusterDefaults.gpu_node_selector_key/value in src/imgclf/settings.py and "
                     "run make compile katib manifests"),
    "no-device-plugin": (_edit("Node", "gpu-1", lambda o: o["status"].update(allocatable={"cpu": "8"})),
                         f"FAIL  gpu allocatable: no labelled node has allocatable {C.gpu_accelerator} | fix: install "
                         "the NVIDIA device plugin or GPU Operator on the GPU nodes"),
    "foreign-taint": (_edit("Node", "gpu-1", lambda o: o["spec"].update(
        taints=[{"key": "dedicated", "value": "ml", "effect": "NoSchedule"}])),
        "FAIL  gpu taints: taint(s) we do not tolerate: gpu-1 dedicated=ml:NoSchedule | fix: remove them, or set "
        f"ClusterDefaults.gpu_toleration_key (we tolerate {C.gpu_toleration_key} Exists NoSchedule) and run make "
        "compile katib manifests"),
    "incomplete-version": (_incomplete_newest, "FAIL  push versions: newest version 3 under {base}/m has no "
                           "saved_model.pb (an interrupted push): servers would try to load it | fix: delete "
                           "{base}/m/3 (the next push takes a new number)"),
    "model-at-base": (_saved_model_at_base, "FAIL  push versions: a SavedModel sits directly in {base}/m: servers "
                      "answer 'No versions of servable found' | fix: move it into {base}/m/1/"),
}


@pytest.mark.parametrize("state", list(BROKEN))
def test_each_broken_state_prints_its_fix(tmp_path, capsys, state):
    mutate, expected = BROKEN[state]
    code, lines = _run(tmp_path, capsys, mutate)
    failed = [line for line in lines if line.startswith("FAIL")]
    assert code == 1
    assert failed == [expected.replace("{base}", str(tmp_path / "models"))], "\n".join(lines)
    assert lines[-1].endswith(", 1 FAILED")


def test_unreachable_kfp_and_kubernetes(tmp_path, capsys):
    code = run_cli(doctor.main, ["--host", "http://127.0.0.1:9", "--kube-host", "http://127.0.0.1:9",
                                 "--push-base", str(tmp_path), "--skip", "push"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 1
    assert lines[0].startswith("FAIL  kfp api: cannot reach http://127.0.0.1:9: ")
    assert lines[0].endswith("| fix: pass --host URL or set KFP_HOST (e.g. `kubectl port-forward -n kubeflow "
                             "svc/ml-pipeline-ui 8080:80` then http://localhost:8080)")
    assert lines[1] == ("FAIL  k8s api: cannot reach the Kubernetes API at http://127.0.0.1:9 | fix: point kubectl at "
                        "the cluster (kubectl config use-context) or pass --kube-host (e.g. after `kubectl proxy`: "
                        "http://127.0.0.1:8001)")


def test_push_base_problems(tmp_path, capsys):
    (tmp_path / "file").write_text("not a directory")
    code = run_cli(doctor.main, ["--push-base", str(tmp_path / "file"), "--skip", "kfp", "--skip", "katib",
                                 "--skip", "pvc", "--skip", "kserve", "--skip", "gpu"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 1 and lines[1] == (f"FAIL  push writable: cannot write under {tmp_path / 'file'}/"
                                      f"{settings.MODEL_NAME}: Not a directory | fix: make it writable by uid 1000 "
                                      "(our images' user) or choose another push_base")
    code = run_cli(doctor.main, ["--push-base", "ftp://host/models", "--skip", "kfp", "--skip", "katib",
                                 "--skip", "pvc", "--skip", "kserve", "--skip", "gpu"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 1 and lines[0].startswith("FAIL  push base: ftp://host/models: unknown URI scheme 'ftp://'")
    assert Path(tmp_path / "file").read_text() == "not a directory"
