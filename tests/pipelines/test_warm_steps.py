"""Warm step processes (pipelines.warm_steps): kfp's local runner forks tasks from a preloaded server."""

import json

import pytest
from kfp import dsl, local

from pipelines import warm_steps


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def add_op(a: int, b: int) -> int:
    return a + b


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def fail_op(a: int) -> int:
    raise ValueError(f"bad input {a}")


def test_parse_task_command_takes_only_the_lightweight_shape():
    command = ["sh", "-ec", 'program_path=$(mktemp -d)\nprintf "%s" "$0" > x\npython3 -m kfp.dsl.executor_main "$@"\n',
               "def f(): pass\n", "--executor_input", "{}", "--function_to_execute", "f"]
    assert warm_steps.parse_task_command(command) == ("def f(): pass\n",
                                                      ["--executor_input", "{}", "--function_to_execute", "f"])
    assert warm_steps.parse_task_command(["python3", "-c", "print(1)"]) is None
    pip = [command[0], command[1], "python3 -m pip install kfp && python3 -m kfp.dsl.executor_main", *command[3:]]
    assert warm_steps.parse_task_command(pip) is None


def test_tasks_run_forked_with_outputs_and_failures(tmp_path):
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path), raise_on_error=True)
    with warm_steps.warm_steps(preload=("json",)) as launcher:
        launcher.ready.wait(120)
        assert add_op(a=2, b=3).output == 5
        with pytest.raises(RuntimeError, match="FAILURE"):
            fail_op(a=1)
    assert launcher.warm_tasks == 2 and launcher.cold_tasks == 0
    outputs = sorted(p.name for p in tmp_path.iterdir())
    assert any("add-op" in name for name in outputs), outputs
    assert json.loads(next(tmp_path.glob("add-op-*/add-op/executor_output.json")).read_text())


def test_disabled_leaves_kfp_alone():
    from kfp.local import subprocess_task_handler as handler

    original = handler.run_local_subprocess
    with warm_steps.warm_steps(enabled=False) as launcher:
        assert launcher is None and handler.run_local_subprocess is original
    with warm_steps.warm_steps(preload=("json",)):
        assert handler.run_local_subprocess is not original
    assert handler.run_local_subprocess is original
