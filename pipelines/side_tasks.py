"""Side branches in the background for kfp's local runner, as on a cluster.

kfp's local orchestrator runs a DAG's tasks one at a time, in one topological order that puts
label_audit after train. On a cluster the label audit runs beside validate and train (all three
need only ingest's dataset) and export_tflite beside evaluate. `side_tasks_in_background()` gives
the local runner that overlap for the tasks named in SIDE_TASKS:
  - the order starts each side task as soon as its own dependencies have run (right after ingest
    for the label audit), not where kfp's depth-first order happens to put it;
  - a side task runs on a thread and the orchestrator goes on at once. Only sinks qualify (no other
    task of the DAG depends on them, so nothing reads their outputs); any other task runs inline;
  - the root DAG waits for its side tasks before it reports: one that failed fails the run through
    kfp's own path ("Inner task failed: label-audit-op"), after the other branches finished, as a
    failed branch on a cluster fails the run without stopping its siblings.
Each task still goes through kfp's own task executor and launcher (warm or cold), so its
artifacts, logs and exit code are what a serial run gives. kfp sets up its log handler and its
indented print per task and puts back what it found on leaving; with tasks side by side that would
strand one task's setup, so within the block both are shared: set up by the first task, put back by
the last (SharedContext).
"""

from __future__ import annotations

import contextlib
import threading

SIDE_TASKS = ("label-audit-op", "export-tflite-op")


def side_sinks(tasks: dict, side: tuple[str, ...] | None = None) -> set[str]:
    """The tasks named in `side` (default: SIDE_TASKS) that no other task depends on."""
    side = SIDE_TASKS if side is None else side
    dependents = {dep for spec in tasks.values() for dep in spec.dependent_tasks}
    return {t for t in tasks if t in side and t not in dependents}


def side_first_order(order: list[str], tasks: dict, sinks: set[str]) -> list[str]:
    """kfp's stack (executed by popping from the right) with each of `sinks` (side_sinks) moved to run right
    after its last dependency. Other tasks keep their relative order."""
    movable = [t for t in reversed(order) if t in sinks]
    run = [t for t in reversed(order) if t not in movable]  # in execution order
    for task in movable:
        deps = set(tasks[task].dependent_tasks)
        after = max((i for i, t in enumerate(run) if t in deps), default=-1)
        run.insert(after + 1, task)
    return list(reversed(run))


class SharedContext:
    """One kfp context manager (logging_utils.local_logger_context, indented_print) shared by tasks that
    overlap: entered by the first, exited by the last, so none restores state another is still using."""

    def __init__(self, factory):
        self.factory, self.lock, self.depth, self.active = factory, threading.Lock(), 0, None

    @contextlib.contextmanager
    def __call__(self):
        with self.lock:
            if self.depth == 0:
                self.active = self.factory()
                self.active.__enter__()
            self.depth += 1
        try:
            yield
        finally:
            with self.lock:
                self.depth -= 1
                if self.depth == 0:
                    active, self.active = self.active, None
                    active.__exit__(None, None, None)


class Background:
    """Runs side tasks on threads; remembers which failed."""

    def __init__(self, execute):
        self.execute = execute
        self.sinks: set[str] = set()  # side sinks seen by the sort: only these may run in the background
        self.threads: list[threading.Thread] = []
        self.failed: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, *args, **kwargs):
        task_name = kwargs.get("task_name", args[0] if args else None)
        if task_name not in self.sinks:
            return self.execute(*args, **kwargs)
        from kfp.local import status

        def run():
            try:
                _, task_status = self.execute(*args, **kwargs)
                failed = task_status != status.Status.SUCCESS
            except Exception:  # noqa: BLE001 (kfp logged it; the run must still end as failed)
                failed = True
            if failed:
                with self.lock:
                    self.failed.append(task_name)

        thread = threading.Thread(target=run, name=f"kfp-side-{task_name}", daemon=True)
        thread.start()
        self.threads.append(thread)
        return {}, status.Status.SUCCESS  # a sink: nothing downstream reads its outputs

    def wait(self) -> list[str]:
        """Join every side task started so far; the names of those that failed."""
        while self.threads:
            self.threads.pop(0).join()
        return list(self.failed)


@contextlib.contextmanager
def side_tasks_in_background(enabled: bool = True):
    """Within the block, kfp's local DAG runs SIDE_TASKS sinks on background threads (see the module doc)."""
    if not enabled:
        yield None
        return
    from kfp.local import graph_utils, logging_utils, status
    from kfp.local.orchestrator import dag_orchestrator, enhanced_dag_orchestrator, task_executor

    # Both of kfp's orchestrators (the plain one, and the one for control flow that our pipeline takes) sort
    # with graph_utils, run a leaf task with task_executor.execute_single_task and recurse into nested DAGs.
    patched = [(graph_utils, "topological_sort_tasks"), (task_executor, "execute_single_task"),
               (dag_orchestrator, "run_dag"), (enhanced_dag_orchestrator, "run_enhanced_dag"),
               (logging_utils, "local_logger_context"), (logging_utils, "indented_print")]
    originals = [getattr(module, name) for module, name in patched]
    original_sort, original_execute, original_run_dag, original_run_enhanced = originals[:4]
    background = Background(original_execute)

    def sort(tasks):
        sinks = side_sinks(tasks)
        background.sinks |= sinks
        return side_first_order(original_sort(tasks), tasks, sinks)

    def at_the_root_wait_for(run):
        def run_dag(**kwargs):
            outputs, dag_status = run(**kwargs)
            if kwargs.get("parent_io_store") is not None:  # a nested DAG (a condition's branch): not the end
                return outputs, dag_status
            failed = background.wait()
            if failed and dag_status == status.Status.SUCCESS:
                kwargs["fail_stack"].append(failed[0])
                return {}, status.Status.FAILURE
            return outputs, dag_status
        return run_dag

    replacements = [sort, background, at_the_root_wait_for(original_run_dag),
                    at_the_root_wait_for(original_run_enhanced), *(SharedContext(c) for c in originals[4:])]
    for (module, name), value in zip(patched, replacements):
        setattr(module, name, value)
    try:
        yield background
    finally:
        for (module, name), value in zip(patched, originals):
            setattr(module, name, value)
        background.wait()  # never let a side task outlive the block (a main-line error raised first)
