"""Side branches in the background (pipelines.side_tasks): kfp's local DAG overlaps sinks with the main line."""

import threading
import time
from types import SimpleNamespace

import pytest
from kfp import dsl, local

from pipelines import side_tasks


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def make_op(n: int) -> int:
    return n


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def slow_op(n: int, seconds: float) -> int:
    import time

    time.sleep(seconds)
    return n + 1


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def side_op(n: int, seconds: float, fail: bool, marker: str):
    import time

    time.sleep(seconds)
    if fail:
        raise ValueError(f"side branch failed on {n}")
    open(marker, "w").write(str(n))


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def last_op(n: int, marker: str):
    open(marker, "w").write(str(n))


def spec(*deps):
    return SimpleNamespace(dependent_tasks=list(deps))


def test_side_sink_moves_right_after_its_dependencies():
    tasks = {"ingest": spec(), "validate": spec("ingest"), "train": spec("validate"), "audit": spec("ingest"),
             "evaluate": spec("train"), "tflite": spec("train"), "push": spec("evaluate")}
    kfp_stack = ["push", "tflite", "evaluate", "audit", "train", "validate", "ingest"]  # popped from the right
    order = side_tasks.side_first_order(kfp_stack, tasks, side_tasks.side_sinks(tasks, side=("audit", "tflite")))
    assert list(reversed(order)) == ["ingest", "audit", "validate", "train", "tflite", "evaluate", "push"]
    # A named task that something depends on is not a sink: it keeps kfp's place.
    tasks["push"] = spec("evaluate", "audit")
    order = side_tasks.side_first_order(kfp_stack, tasks, side_tasks.side_sinks(tasks, side=("audit", "tflite")))
    assert list(reversed(order)) == ["ingest", "validate", "train", "tflite", "audit", "evaluate", "push"]


def test_shared_context_is_set_up_by_the_first_user_and_put_back_by_the_last():
    events = []

    class Recorder:
        def __enter__(self):
            events.append("enter")

        def __exit__(self, *exc):
            events.append("exit")

    shared = side_tasks.SharedContext(Recorder)
    first_in, release = threading.Event(), threading.Event()

    def long_user():
        with shared():
            first_in.set()
            release.wait(10)

    thread = threading.Thread(target=long_user)
    thread.start()
    first_in.wait(10)
    with shared():  # overlaps the first: no second set-up, and leaving does not tear the first's down
        pass
    assert events == ["enter"]
    release.set()
    thread.join()
    assert events == ["enter", "exit"]


def _pipeline(tmp_path, side_fails: bool):
    @dsl.pipeline(name="side-demo")
    def demo(seconds: float = 3.0):
        first = make_op(n=1)
        side = side_op(n=first.output, seconds=seconds, fail=side_fails, marker=str(tmp_path / "side.txt"))
        side.set_caching_options(False)
        main = slow_op(n=first.output, seconds=seconds)
        last_op(n=main.output, marker=str(tmp_path / "last.txt"))

    return demo


def _run_with_side_named(monkeypatch, tmp_path, side_fails):
    monkeypatch.setattr(side_tasks, "SIDE_TASKS", ("side-op",))
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"),
               raise_on_error=True)
    start = time.perf_counter()
    with side_tasks.side_tasks_in_background():
        _pipeline(tmp_path, side_fails)()
    return time.perf_counter() - start


def test_side_task_overlaps_the_main_line_and_finishes_before_the_run_ends(monkeypatch, tmp_path):
    serial_floor = 2 * 3.0  # both sleeps one after the other
    seconds = _run_with_side_named(monkeypatch, tmp_path, side_fails=False)
    assert (tmp_path / "side.txt").read_text() == "1" and (tmp_path / "last.txt").read_text() == "2"
    # Each task is a fresh interpreter (~1 s here), so compare with the two sleeps plus the four start-ups
    # run one after another, measured in the same test: overlap must save at least half of one sleep.
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "serial"),
               raise_on_error=True)
    start = time.perf_counter()
    _pipeline(tmp_path, False)()
    serial = time.perf_counter() - start
    assert serial >= serial_floor
    assert seconds < serial - 1.5, (seconds, serial)


def test_a_failing_side_task_fails_the_run_after_the_main_line_finished(monkeypatch, tmp_path):
    with pytest.raises(RuntimeError, match="Inner task failed: .*side-op"):
        _run_with_side_named(monkeypatch, tmp_path, side_fails=True)
    assert (tmp_path / "last.txt").read_text() == "2"  # the main line ran to its end, as on a cluster
    assert not (tmp_path / "side.txt").exists()


def test_disabled_leaves_kfp_alone():
    from kfp.local import graph_utils, logging_utils
    from kfp.local.orchestrator import dag_orchestrator, enhanced_dag_orchestrator, task_executor

    def current():
        return (graph_utils.topological_sort_tasks, task_executor.execute_single_task, dag_orchestrator.run_dag,
                enhanced_dag_orchestrator.run_enhanced_dag, logging_utils.local_logger_context,
                logging_utils.indented_print)

    before = current()
    with side_tasks.side_tasks_in_background(enabled=False) as background:
        assert background is None and current() == before
    with side_tasks.side_tasks_in_background():
        assert all(a is not b for a, b in zip(current(), before))
    assert current() == before


def test_only_sinks_the_sort_found_run_in_the_background():
    calls = []
    background = side_tasks.Background(lambda **kw: calls.append(kw["task_name"]) or ({"x": 1}, "done"))
    # A named task the sort did not find to be a sink (something reads it) runs inline, outputs and all.
    assert background(task_name="label-audit-op") == ({"x": 1}, "done")
    assert calls == ["label-audit-op"] and not background.threads
    tasks = {"ingest": spec(), "label-audit-op": spec("ingest"), "train": spec("ingest", "label-audit-op")}
    assert side_tasks.side_sinks(tasks) == set()
    tasks["train"] = spec("ingest")
    assert side_tasks.side_sinks(tasks) == {"label-audit-op"}
