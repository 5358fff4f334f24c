"""KFP backend compatibility: the committed YAMLs stay within KFP 2.5.0, caching cannot break the OneOf,
and `make submit` refuses an older backend (against the KFP contract server)."""

# No `from __future__ import annotations`: kfp reads the component annotations as real types.
import pytest
from kfp import compiler, dsl

from imgclf import settings
from imgclf.kfp_client import compat as kfp_compat
from imgclf.errors import run_cli
from imgclf.kfp_client.spec_check import load_pipeline_docs
from tests.kfp_contract_server import ContractServer, KfpState

COMMITTED = [settings.PIPELINE_YAML, settings.PIPELINE_GPU_YAML]


@pytest.mark.parametrize("path", COMMITTED, ids=["cpu", "gpu"])
def test_committed_yaml_uses_nothing_above_the_minimum_backend(path):
    assert kfp_compat.above_minimum(path) == []
    needed, used = kfp_compat.min_backend(path)
    assert needed == kfp_compat.MIN_BACKEND == "2.5.0"
    assert {f for f, _, _ in used} == {kfp_compat.ONEOF, kfp_compat.PVC_PARAMETER}


@dsl.component(base_image=settings.CPU_IMAGE, install_kfp_package=False)
def _pick(x: int) -> int:
    return x


def test_display_names_and_condition_names_are_detected(tmp_path):
    @dsl.pipeline(name="named")
    def named(flag: str = "a"):
        with dsl.If(flag == "a", name="branch-a"):
            _pick(x=1).set_display_name("pick one")

    path = tmp_path / "named.yaml"
    compiler.Compiler().compile(named, str(path))
    problems = kfp_compat.above_minimum(path)
    assert len(problems) == 2 and all("task display name" in p and ">= 2.14.0" in p for p in problems), problems
    assert any("'pick one'" in p for p in problems) and any("'branch-a'" in p for p in problems)
    assert kfp_compat.main([str(path)]) == 1
    assert kfp_compat.main([str(path), "--minimum", "2.14.0"]) == 0


def test_kfp_kubernetes_secret_optional_field_is_detected_and_dropped_by_compile(tmp_path):
    """kfp-kubernetes writes `optional: false` on a secret; backends < 2.15.0 reject the field (#12495)."""
    import yaml
    from kfp import kubernetes

    from pipelines.compile import _for_min_backend

    @dsl.pipeline(name="secret")
    def with_secret():
        kubernetes.use_secret_as_env(_pick(x=1), secret_name="s", secret_key_to_env={"k": "K"})

    path = tmp_path / "secret.yaml"
    compiler.Compiler().compile(with_secret, str(path))
    [problem] = kfp_compat.above_minimum(path)
    assert "secretAsEnv optional" in problem and ">= 2.15.0" in problem
    _for_min_backend(path)
    assert kfp_compat.above_minimum(path) == []
    secret = yaml.safe_load_all(path.read_text())
    platform = list(secret)[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-pick"]
    assert platform["secretAsEnv"] == [{"keyToEnv": [{"envVar": "K", "secretKey": "k"}], "secretName": "s",
                                        "secretNameParameter": {"runtimeValue": {"constant": "s"}}}]
    # optional=True would change the meaning if dropped: refused.
    compiler.Compiler().compile(with_secret, str(path))
    docs = list(yaml.safe_load_all(path.read_text()))
    docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-pick"]["secretAsEnv"][0]["optional"] = True
    with pytest.raises(ValueError, match="needs KFP backend >= 2.15.0"):
        kfp_compat.without_default_secret_optional(docs[1])


@pytest.mark.parametrize("path", COMMITTED, ids=["cpu", "gpu"])
def test_nothing_feeding_the_oneof_is_cached(path):
    spec, _ = load_pipeline_docs(path)
    comps = spec["components"]
    [(branches_name, branches)] = [(n, c) for n, c in comps.items()
                                   if "valueFromOneof" in str(c.get("dag", {}).get("outputs", {}))]
    selectors = branches["dag"]["outputs"]["parameters"]
    producers = {s["producerSubtask"] for out in selectors.values()
                 for s in out["valueFromOneof"]["parameterSelectors"]}
    seen = []
    for producer in producers:  # each branch DAG: every task in it runs uncached
        branch = comps[branches["dag"]["tasks"][producer]["componentRef"]["name"]]
        for name, task in branch["dag"]["tasks"].items():
            assert task.get("cachingOptions") == {}, f"{name} in {producer} is cached"
            seen.append(name)
    assert sorted(seen) == ["default-hyperparameters-op", "katib-stage-op", "katib-tune-op", "tune-op"]
    root = spec["root"]["dag"]["tasks"]
    assert root["ingest-op"]["cachingOptions"] == {}
    assert root["train-op"]["cachingOptions"] == {"enableCache": True}


@pytest.mark.parametrize("text, parsed", [("2.5.0", (2, 5, 0)), ("v2.14.3", (2, 14, 3)), ("2.4.1-rc.1", (2, 4, 1)),
                                          ("2.15", (2, 15, 0)), ("", None), ("dev", None)])
def test_parse_version(text, parsed):
    assert kfp_compat.parse_version(text) == parsed


def _submit(url, *extra):
    from imgclf.kfp_client import submit

    return run_cli(submit.main, ["--host", url, "--auth", "none", *extra])


def test_submit_refuses_an_older_backend_in_one_line(capsys):
    with ContractServer(KfpState(tag_name="2.4.1")) as kfp:
        assert _submit(kfp.url) == 2
        assert not kfp.calls("POST", "/pipelines/upload")
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "is 2.4.1, older than the minimum 2.5.0" in err and "upgrade Kubeflow Pipelines to >= 2.5.0" in err


def test_submit_warns_and_goes_on_when_the_backend_reports_no_version(capsys):
    with ContractServer(KfpState(tag_name="unknown")) as kfp:  # TAG_NAME's default on dev builds
        assert _submit(kfp.url) == 0
        assert kfp.calls("POST", "/runs")
    assert "warning: KFP at http://127.0.0.1:" in capsys.readouterr().err


def test_submit_accepts_the_minimum_and_newer(capsys):
    for tag in ("2.5.0", "2.15.0"):
        with ContractServer(KfpState(tag_name=tag)) as kfp:
            assert _submit(kfp.url) == 0
            assert kfp.calls("POST", "/runs")
    assert "warning" not in capsys.readouterr().err


@pytest.mark.parametrize("path", COMMITTED, ids=["cpu", "gpu"])
def test_only_the_staging_task_mounts_the_data_pvc(path):
    spec, platform = load_pipeline_docs(path)
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    mounts = {name: cfg["pvcMount"] for name, cfg in executors.items() if "pvcMount" in cfg}
    assert list(mounts) == ["exec-katib-stage-op"]
    [mount] = mounts["exec-katib-stage-op"]
    assert mount["mountPath"] == settings.KATIB_DATA_MOUNT
    assert mount["pvcNameParameter"] == {"componentInputParameter": "pipelinechannel--katib_data_pvc"}
    # the waiting launcher runs after staging has finished (its dataset_path is the staging task's output)
    katib = next(c for c in spec["components"].values()
                 if "katib-tune-op" in c.get("dag", {}).get("tasks", {}))["dag"]["tasks"]["katib-tune-op"]
    assert katib["inputs"]["parameters"]["dataset_path"]["taskOutputParameter"]["producerTask"] == "katib-stage-op"
