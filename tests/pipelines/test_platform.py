"""pipelines/platform.py and imgclf.kfp_client.spec_check: compile a tiny pipeline, check it offline with kfp's protos."""

# No `from __future__ import annotations`: kfp reads the component annotations as real types.
from pathlib import Path

import pytest
import yaml
from google.protobuf import json_format
from kfp import compiler, dsl
from kfp.kubernetes import kubernetes_executor_config_pb2
from kfp.pipeline_spec import pipeline_spec_pb2

from imgclf import settings
from imgclf.kfp_client.spec_check import load_pipeline_docs, validate_pipeline_yaml
from pipelines.platform import apply_platform


@dsl.component(base_image=settings.CPU_IMAGE, install_kfp_package=False)
def dummy_ingest(data_uri: str, dataset: dsl.Output[dsl.Dataset]):
    dataset.metadata["uri"] = data_uri


@dsl.component(base_image=settings.CPU_IMAGE, install_kfp_package=False)
def dummy_train(dataset: dsl.Input[dsl.Dataset], epochs: int, model: dsl.Output[dsl.Model]):
    model.metadata["epochs"] = epochs


def compile_tiny(tmp_path: Path, gpu: bool) -> Path:
    @dsl.pipeline(name="tiny-platform")
    def tiny(data_uri: str = "gs://bucket/data", epochs: int = 1):
        ingest = apply_platform(dummy_ingest(data_uri=data_uri), "ingest", gpu=gpu)
        apply_platform(dummy_train(dataset=ingest.outputs["dataset"], epochs=epochs), "train", gpu=gpu)

    path = tmp_path / f"tiny_{'gpu' if gpu else 'cpu'}.yaml"
    compiler.Compiler().compile(tiny, str(path))
    return path


def strict_spec(path: Path) -> tuple[pipeline_spec_pb2.PipelineSpec, list[dict]]:
    docs = list(yaml.safe_load_all(path.read_text()))
    spec = json_format.ParseDict(docs[0], pipeline_spec_pb2.PipelineSpec(), ignore_unknown_fields=False)
    return spec, docs


def container(docs: list[dict], executor: str) -> dict:
    return docs[0]["deploymentSpec"]["executors"][executor]["container"]


@pytest.mark.parametrize("gpu", [False, True])
def test_compiled_tiny_pipeline_is_valid(tmp_path, gpu):
    path = compile_tiny(tmp_path, gpu)
    assert validate_pipeline_yaml(path) == []
    spec, _ = strict_spec(path)
    assert spec.schema_version == "2.1.0"


def test_storage_steps_get_the_s3_endpoint_and_kfp_minio_secret(tmp_path):
    _, docs = strict_spec(compile_tiny(tmp_path, gpu=False))
    env = {e["name"]: e["value"] for e in container(docs, "exec-dummy-ingest")["env"]}
    assert env == {"AWS_ENDPOINT_URL": "http://minio-service.kubeflow:9000"}
    assert "env" not in container(docs, "exec-dummy-train")
    executors = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(executors) == {"exec-dummy-ingest"}
    config = json_format.ParseDict(executors["exec-dummy-ingest"],
                                   kubernetes_executor_config_pb2.KubernetesExecutorConfig(),
                                   ignore_unknown_fields=False)
    [secret] = config.secret_as_env
    assert secret.secret_name == "mlpipeline-minio-artifact" and not secret.optional
    assert {k.secret_key: k.env_var for k in secret.key_to_env} == {
        "accesskey": "AWS_ACCESS_KEY_ID", "secretkey": "AWS_SECRET_ACCESS_KEY"}


def test_a_local_run_keeps_the_cluster_endpoint_out_of_step_environments(tmp_path, monkeypatch):
    """kfp's local runner applies container env (not the platform spec): local steps must keep the
    caller's AWS_ENDPOINT_URL, not get the cluster's MinIO."""
    from pipelines import platform

    monkeypatch.setattr(platform, "LOCAL_RUN", True)
    _, docs = strict_spec(compile_tiny(tmp_path, gpu=False))
    assert "env" not in container(docs, "exec-dummy-ingest") and len(docs) == 1


def test_gpu_train_gets_accelerator_image_selector_and_toleration(tmp_path):
    spec, docs = strict_spec(compile_tiny(tmp_path, gpu=True))
    train = container(docs, "exec-dummy-train")
    accel = train["resources"]["accelerator"]
    assert accel["resourceType"] == settings.CLUSTER.gpu_accelerator
    assert accel["resourceCount"] == str(settings.CLUSTER.gpu_count)
    assert train["resources"]["resourceCpuLimit"] == settings.CLUSTER.train_cpu_limit
    assert train["resources"]["resourceMemoryLimit"] == settings.CLUSTER.train_memory_limit
    assert train["image"] == settings.GPU_IMAGE

    assert len(docs) == 2
    executors = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(executors) == {"exec-dummy-ingest", "exec-dummy-train"}  # ingest: the storage secret
    config = json_format.ParseDict(
        executors["exec-dummy-train"],
        kubernetes_executor_config_pb2.KubernetesExecutorConfig(),
        ignore_unknown_fields=False,
    )
    assert dict(config.node_selector.labels) == {
        settings.CLUSTER.gpu_node_selector_key: settings.CLUSTER.gpu_node_selector_value
    }
    [toleration] = config.tolerations
    assert (toleration.key, toleration.operator, toleration.effect) == ("nvidia.com/gpu", "Exists", "NoSchedule")


def test_gpu_variant_leaves_light_steps_on_cpu(tmp_path):
    _, docs = strict_spec(compile_tiny(tmp_path, gpu=True))
    ingest = container(docs, "exec-dummy-ingest")
    assert ingest["image"] == settings.CPU_IMAGE
    assert "accelerator" not in ingest["resources"]
    assert ingest["resources"]["resourceCpuLimit"] == settings.CLUSTER.cpu_limit
    assert ingest["resources"]["resourceMemoryRequest"] == settings.CLUSTER.memory_request


def test_cpu_variant_has_resources_but_no_gpu_or_platform_spec(tmp_path):
    spec, docs = strict_spec(compile_tiny(tmp_path, gpu=False))
    # The platform spec holds only the storage secret of ingest: no selector, toleration or GPU.
    assert list(docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]) == ["exec-dummy-ingest"]
    assert set(docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-dummy-ingest"]) == {
        "secretAsEnv"}
    train = container(docs, "exec-dummy-train")
    assert train["image"] == settings.CPU_IMAGE
    assert "accelerator" not in train["resources"]
    assert train["resources"]["resourceCpuRequest"] == settings.CLUSTER.cpu_request
    assert train["resources"]["resourceCpuLimit"] == settings.CLUSTER.train_cpu_limit


def test_caching_off_for_ingest_on_for_train(tmp_path):
    spec, _ = strict_spec(compile_tiny(tmp_path, gpu=False))
    tasks = spec.root.dag.tasks
    assert tasks["dummy-ingest"].caching_options.enable_cache is False
    assert tasks["dummy-train"].caching_options.enable_cache is True


def test_unknown_step_is_rejected():
    with pytest.raises(ValueError, match="unknown step 'training'"):
        apply_platform(object(), "training", gpu=False)


def test_validator_reports_unknown_fields_latest_and_pip(tmp_path):
    spec_dict, platform = load_pipeline_docs(compile_tiny(tmp_path, gpu=True))
    platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-dummy-train"]["nodeSelectr"] = {}
    executor = spec_dict["deploymentSpec"]["executors"]["exec-dummy-ingest"]["container"]
    executor["image"] = "python:latest"
    executor["command"] = ["sh", "-c", "pip install foo && python x.py"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump_all([spec_dict, platform]))
    problems = validate_pipeline_yaml(bad)
    assert any("exec-dummy-train" in p and "nodeSelectr" in p for p in problems), problems
    assert any(":latest" in p for p in problems), problems
    assert any("pip install" in p for p in problems), problems


def test_validator_rejects_unknown_top_level_field_and_missing_file(tmp_path):
    spec_dict, _ = load_pipeline_docs(compile_tiny(tmp_path, gpu=False))
    spec_dict["schemaVersoin"] = "2.1.0"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(spec_dict))
    assert any("schemaVersoin" in p for p in validate_pipeline_yaml(bad))
    assert validate_pipeline_yaml(tmp_path / "missing.yaml") == [
        f"{tmp_path / 'missing.yaml'}: no such compiled pipeline (run `make compile`)"
    ]


@pytest.mark.parametrize("path", [settings.PIPELINE_YAML, settings.PIPELINE_GPU_YAML], ids=["cpu", "gpu"])
def test_committed_pipeline_yaml_is_valid(path):
    if not path.exists():
        pytest.skip(f"{path.name} not compiled yet (the lead's `make compile`)")
    assert validate_pipeline_yaml(path) == []


def test_gpu_placement_is_defined_once_and_reaches_every_gpu_artifact():
    """KFP GPU tasks, Katib GPU trials and the GPU serving overlay all carry settings.gpu_placement()."""
    gpu = settings.gpu_placement()
    spec, platform = list(yaml.safe_load_all(settings.PIPELINE_GPU_YAML.read_text()))
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for name in ("exec-train-op", "exec-tune-op"):
        assert executors[name]["nodeSelector"]["labels"] == gpu.node_selector
        assert executors[name]["tolerations"] == [gpu.toleration]
        accelerator = spec["deploymentSpec"]["executors"][name]["container"]["resources"]["accelerator"]
        assert (accelerator["resourceType"], int(accelerator["resourceCount"])) == (gpu.accelerator, gpu.count)

    trial = yaml.safe_load((settings.KATIB_DIR / "experiment-gpu.yaml").read_text())
    pod = trial["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == gpu.node_selector and pod["tolerations"] == [gpu.toleration]
    assert pod["containers"][0]["resources"]["limits"][gpu.accelerator] == str(gpu.count)

    rendered = list(yaml.safe_load_all((settings.MANIFESTS_DIR / "rendered" / "gpu.yaml").read_text()))
    pods = [d["spec"]["predictor"] for d in rendered if d["kind"] == "InferenceService"]
    pods += [d["spec"]["template"]["spec"] for d in rendered if d["kind"] == "Deployment"]
    assert len(pods) == 2
    for pod in pods:
        assert pod["nodeSelector"] == gpu.node_selector and pod["tolerations"] == [gpu.toleration]
