"""imgclf.kfp_client.submit against the KFP contract server (tests/kfp_contract_server.py): a contract test, not a cluster.

kfp.Client 2.17 and kfp_server_api do the real HTTP; the server answers the
v2beta1 subset they call and records what reached it.
"""
# No `from __future__ import annotations`: kfp reads the component annotations as real types.
import re
import socket

import pytest
import yaml
from kfp import compiler, dsl

from imgclf import settings
from imgclf.kfp_client import submit
from imgclf.errors import run_cli
from tests.kfp_contract_server import ContractServer, KfpState

STAMP = r"\d{8}T\d{6}\.\d{3}Z"


@dsl.component(base_image=settings.CPU_IMAGE, install_kfp_package=False)
def echo(data_uri: str, epochs: int, learning_rate: float, augment: bool) -> str:
    return f"{data_uri} {epochs} {learning_rate} {augment}"


@dsl.pipeline(name="tiny-submit")
def tiny(data_uri: str = "gs://bucket/data", epochs: int = 3, learning_rate: float = 0.001, augment: bool = False):
    echo(data_uri=data_uri, epochs=epochs, learning_rate=learning_rate, augment=augment)


@pytest.fixture(scope="module")
def pipeline_yaml(tmp_path_factory):
    path = tmp_path_factory.mktemp("compiled") / "tiny.yaml"
    compiler.Compiler().compile(tiny, str(path))
    return path


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("KFP_HOST", "KFP_TOKEN", "KFP_COOKIE", "KF_PIPELINES_UI_ENDPOINT", "KF_PIPELINES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", "/nonexistent/kfp-sa-token")


@pytest.fixture
def kfp():
    with ContractServer() as server:
        yield server


def run(argv, capsys):
    code = run_cli(submit.main, [str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_submit_twice_uploads_a_new_version_the_second_time(kfp, pipeline_yaml, capsys):
    argv = ["--host", kfp.url, "--pipeline-file", pipeline_yaml]
    code1, out1, _ = run(argv, capsys)
    code2, out2, _ = run(argv, capsys)
    assert (code1, code2) == (0, 0)
    assert len(kfp.calls("POST", "/pipelines/upload")) == 1
    [version_upload] = kfp.calls("POST", "/pipelines/upload_version")
    assert re.fullmatch(rf"tiny-submit-{STAMP}", version_upload.query["name"])
    assert "uploadfile" in version_upload.body["files"]
    [pid] = kfp.state.pipelines
    assert len(kfp.state.versions[pid]) == 2
    bodies = [r.body for r in kfp.calls("POST", "/runs")]
    assert [b["pipeline_version_reference"]["pipeline_version_id"] for b in bodies] == [
        v["pipeline_version_id"] for v in kfp.state.versions[pid]
    ]
    assert all(re.fullmatch(rf"tiny-submit-{STAMP}", b["display_name"]) for b in bodies)
    assert len(kfp.state.experiments) == 1  # the second submit found the experiment
    [experiment] = kfp.state.experiments.values()
    assert experiment["display_name"] == settings.PIPELINE_NAME
    for out, run_id in zip((out1, out2), kfp.state.runs):
        assert f"dashboard: {kfp.url}/#/runs/details/{run_id}" in out


def test_params_file_and_flags_reach_the_run_with_declared_types(kfp, pipeline_yaml, tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"epochs": 5, "learning_rate": "0.01", "data_uri": "gs://b/fmnist"}))
    code, _, err = run(["--host", kfp.url, "--pipeline-file", pipeline_yaml, "--params-file", params,
                        "--param", "epochs=7", "--param", "augment=true", "--pipeline-root", "gs://b/root"], capsys)
    assert code == 0, err
    [create] = kfp.calls("POST", "/runs")
    config = create.body["runtime_config"]
    assert config["parameters"] == {"epochs": 7, "learning_rate": 0.01, "data_uri": "gs://b/fmnist", "augment": True}
    assert type(config["parameters"]["epochs"]) is int and type(config["parameters"]["learning_rate"]) is float
    assert config["pipeline_root"] == "gs://b/root"


def test_disable_caching_uploads_a_version_with_caching_off(kfp, pipeline_yaml, capsys):
    assert run(["--host", kfp.url, "--pipeline-file", pipeline_yaml, "--disable-caching"], capsys)[0] == 0
    [pid] = kfp.state.pipelines
    spec = kfp.state.versions[pid][0]["pipeline_spec"]
    assert [t["cachingOptions"] for t in spec["root"]["dag"]["tasks"].values()] == [{}]
    compiled = next(yaml.safe_load_all(pipeline_yaml.read_text()))
    assert compiled["root"]["dag"]["tasks"]["echo"]["cachingOptions"] == {"enableCache": True}


def test_bearer_token_is_sent_in_the_authorization_header(pipeline_yaml, monkeypatch, capsys):
    monkeypatch.setenv("KFP_TOKEN", "s3cret")
    with ContractServer(KfpState(required_token="s3cret")) as kfp:
        code, _, err = run(["--host", kfp.url, "--pipeline-file", pipeline_yaml], capsys)
    assert code == 0, err
    assert {r.headers.get("authorization") for r in kfp.state.requests} == {"Bearer s3cret"}


def test_token_file_and_service_account_modes(pipeline_yaml, tmp_path, monkeypatch, capsys):
    token = tmp_path / "token"
    token.write_text("from-file\n")
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(token))
    for argv in (["--token-file", token], ["--auth", "sa"]):
        with ContractServer(KfpState(required_token="from-file")) as kfp:
            code, _, err = run(["--host", kfp.url, "--pipeline-file", pipeline_yaml, *argv], capsys)
        assert code == 0, err
        assert kfp.calls("POST", "/runs")


def test_cookie_mode_sends_the_session_cookie(kfp, pipeline_yaml, monkeypatch, capsys):
    monkeypatch.setenv("KFP_COOKIE", "authservice_session=abc")
    assert run(["--host", kfp.url, "--pipeline-file", pipeline_yaml], capsys)[0] == 0
    assert {r.headers.get("cookie") for r in kfp.state.requests} == {"authservice_session=abc"}


@pytest.mark.parametrize("mode_args,mode", [([], "none"), (["--auth", "token"], "token")])
def test_401_is_one_line_naming_the_auth_mode(pipeline_yaml, monkeypatch, capsys, mode_args, mode):
    monkeypatch.setenv("KFP_TOKEN", "wrong")
    argv_auth = mode_args if mode == "token" else ["--auth", "none"]
    with ContractServer(KfpState(required_token="right")) as kfp:
        code, out, err = run(["--host", kfp.url, "--pipeline-file", pipeline_yaml, *argv_auth], capsys)
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"refused auth mode '{mode}' with HTTP 401" in err
    assert not kfp.calls("POST", "/runs")


def test_401_after_an_open_healthz_is_one_line(pipeline_yaml, capsys):
    with ContractServer(KfpState(required_token="right", healthz_public=True)) as kfp:
        code, _, err = run(["--host", kfp.url, "--pipeline-file", pipeline_yaml], capsys)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "refused auth mode 'none' with HTTP 401 (Unauthenticated: invalid or missing bearer token)" in err


def test_unknown_namespace_is_one_line(pipeline_yaml, capsys):
    with ContractServer(KfpState(multi_user=True)) as kfp:
        code, _, err = run(["--host", kfp.url, "--pipeline-file", pipeline_yaml, "--namespace", "nope"], capsys)
        assert code == 2 and err.count("\n") == 1
        assert "rejected namespace 'nope'" in err
        code, _, err = run(["--host", kfp.url, "--pipeline-file", pipeline_yaml], capsys)
        assert code == 2 and "is multi-user: pass --namespace" in err
        code, _, err = run(["--host", kfp.url, "--pipeline-file", pipeline_yaml, "--namespace", "kubeflow-user"], capsys)
        assert code == 0, err
        [upload] = kfp.calls("POST", "/pipelines/upload")
        assert upload.query["namespace"] == "kubeflow-user"


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--param", "epoch=3"], "unknown parameter 'epoch' (--param); the pipeline takes: augment, data_uri, epochs"),
        (["--param", "epochs=3.5"], "parameter epochs='3.5' (--param) is not a valid integer"),
        (["--param", "augment=maybe"], "parameter augment='maybe' (--param) is not a valid boolean"),
        (["--param", "epochs"], "--param 'epochs': expected name=value"),
    ],
)
def test_bad_params_fail_before_any_request(kfp, pipeline_yaml, capsys, argv, message):
    code, _, err = run(["--host", kfp.url, "--pipeline-file", pipeline_yaml, *argv], capsys)
    assert code == 2 and err.count("\n") == 1
    assert message in err
    assert kfp.state.requests == []


def test_bad_value_in_params_file_fails_before_any_request(kfp, pipeline_yaml, tmp_path, capsys):
    params = tmp_path / "p.yaml"
    params.write_text("learning_rate: fast\n")
    code, _, err = run(["--host", kfp.url, "--pipeline-file", pipeline_yaml, "--params-file", params], capsys)
    assert code == 2 and f"parameter learning_rate='fast' ({params}) is not a valid number" in err
    assert kfp.state.requests == []


def test_missing_compiled_yaml_says_make_compile(kfp, tmp_path, capsys):
    code, _, err = run(["--host", kfp.url, "--pipeline-file", tmp_path / "none.yaml"], capsys)
    assert code == 2 and "run `make compile` first" in err and err.count("\n") == 1
    assert kfp.state.requests == []


def test_unreachable_host_is_one_line(pipeline_yaml, capsys):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, _, err = run(["--host", f"http://127.0.0.1:{port}", "--pipeline-file", pipeline_yaml], capsys)
    assert code == 2 and err.count("\n") == 1
    assert f"cannot reach KFP at http://127.0.0.1:{port}" in err


def test_no_host_is_one_line(pipeline_yaml, capsys):
    code, _, err = run(["--pipeline-file", pipeline_yaml], capsys)
    assert code == 2 and "no KFP host: pass --host URL or set KFP_HOST" in err


@pytest.mark.parametrize("final,code", [("SUCCEEDED", 0), ("FAILED", 1)])
def test_wait_polls_to_the_final_state(pipeline_yaml, capsys, final, code):
    with ContractServer(KfpState(run_states=("PENDING", "RUNNING", "RUNNING", final))) as kfp:
        got, out, err = run(["--host", kfp.url, "--pipeline-file", pipeline_yaml, "--wait",
                             "--poll-interval", "0.01"], capsys)
        [run_id] = kfp.state.runs
        polls = kfp.calls("GET", f"/runs/{run_id}")
    assert got == code
    assert len(polls) == 3
    assert "RUNNING" in out and f"run {run_id} finished: {final}" in out
    if final == "FAILED":
        assert "task train failed" in err


def test_submits_the_committed_pipeline_when_compiled(kfp, capsys):
    if not settings.PIPELINE_YAML.exists():
        pytest.skip("pipelines/training_pipeline.yaml not compiled yet")
    code, _, err = run(["--host", kfp.url, "--param", "epochs=1", "--param", "dropout=0.25"], capsys)
    assert code == 0, err
    [create] = kfp.calls("POST", "/runs")
    assert create.body["runtime_config"]["parameters"] == {"epochs": 1, "dropout": 0.25}
    [upload] = kfp.calls("POST", "/pipelines/upload")
    assert upload.query["name"] == settings.PIPELINE_NAME


@pytest.mark.parametrize("argv,message", [
    (["--param", "push_base=gs://YOUR_BUCKET/models"],
     "parameter push_base='gs://YOUR_BUCKET/models' still holds a placeholder; set it with --param push_base=VALUE"),
    (["--param", "accuracy_threshold=1.5"], "parameter accuracy_threshold=1.5 must be in [0, 1]"),
    (["--param", "epochs=0"], "parameter epochs=0 must be at least 1"),
    (["--param", "data_uri=ftp://host/data"], "parameter data_uri='ftp://host/data' is not a supported URI"),
])
def test_committed_pipeline_values_are_checked_before_any_request(kfp, capsys, argv, message):
    code, _, err = run(["--host", kfp.url, *argv], capsys)
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert kfp.state.requests == []
