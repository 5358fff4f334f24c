"""Warm step processes for kfp's local runner: pay TensorFlow's import once per run, not once per step.

kfp's SubprocessRunner starts every task as `sh -ec '... python3 -m kfp.dsl.executor_main ...'`,
a fresh interpreter that imports TensorFlow again (~5-7 s on 2 cores) for train,
evaluate and export_tflite. `warm_steps()` swaps kfp's subprocess launcher for
one that forks each task from a Python fork server (the standard library's
multiprocessing "forkserver") that imported tensorflow, keras and kfp once, in
the background, while the first steps (which need no TensorFlow) run.

Each task still runs in its own process, through kfp's own executor_main, with
the same arguments, outputs and exit code, so a failing step fails the same way.
Importing TensorFlow starts no op or thread pool, so forking after it is safe;
every step builds its own TF runtime in the child. Commands of any other shape,
and tasks that set environment variables, go to kfp's own launcher unchanged.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import tempfile
import threading
from pathlib import Path

# What a forked step would otherwise import itself; kfp.dsl.executor_main and our step modules are cheap after these.
PRELOAD = ("tensorflow", "keras", "kfp.dsl", "kfp.dsl.executor_main", "numpy", "imgclf.settings")
EXECUTOR = "kfp.dsl.executor_main"
# Components that import no TensorFlow: while the server is still importing they start cold (about as
# quick); every other task waits for the server rather than import TensorFlow a second time beside it.
COLD_WHILE_WARMING = ("ingest_op", "validate_op", "default_hyperparameters_op", "push_op")
READY_TIMEOUT_SECONDS = 600


def parse_task_command(full_command: list[str]) -> tuple[str, list[str]] | None:
    """(component source, executor_main arguments) for kfp's lightweight-component command; None for other shapes.

    The shape is ['sh', '-ec', '<script writing $0 to a file, then python -m kfp.dsl.executor_main ... "$@">',
    '<component source>', '--executor_input', ..., '--function_to_execute', NAME] (no pip part: our components
    are compiled with install_kfp_package=False and no packages_to_install).
    """
    if len(full_command) < 4 or full_command[:2] != ["sh", "-ec"]:
        return None
    script = full_command[2]
    if EXECUTOR not in script or "pip install" in script or "--function_to_execute" not in full_command[4:]:
        return None
    return full_command[3], full_command[4:]


def _ready() -> None:
    """A no-op task: when it has run, the fork server has finished importing PRELOAD."""


def _run_task(module_path: str, args: list[str]) -> None:
    """In the forked child: run kfp's executor as `python -m kfp.dsl.executor_main` would."""
    import runpy

    # The child inherits the "forkserver" start method; a step's own pools (cleanlab's) expect the default.
    multiprocessing.set_start_method(None, force=True)
    os.environ["_KFP_RUNTIME"] = "true"
    sys.argv = [EXECUTOR, "--component_module_path", module_path, *args]
    runpy.run_module(EXECUTOR, run_name="__main__", alter_sys=True)


class WarmLauncher:
    """Runs kfp task commands in processes forked from a preloaded fork server; falls back to kfp's launcher."""

    def __init__(self, fallback, preload=PRELOAD):
        self.fallback = fallback
        self.ctx = multiprocessing.get_context("forkserver")
        self.ctx.set_forkserver_preload(list(preload))
        self.warm_tasks = self.cold_tasks = 0
        self.ready = threading.Event()

    def start(self) -> None:
        """Start the fork server now: it imports PRELOAD in its own process while the first steps run cold."""
        def warm_up():
            process = self.ctx.Process(target=_ready, name="kfp-step-warm-up")
            process.start()
            process.join()
            if process.exitcode == 0:
                self.ready.set()

        self.warming = threading.Thread(target=warm_up, name="kfp-step-warm-up", daemon=True)
        self.warming.start()

    def finish(self) -> None:
        """Wait for the warm-up to end, so nothing the fork server prints (TensorFlow's start-up log) comes
        after the run's last line."""
        self.warming.join(READY_TIMEOUT_SECONDS)
        sys.stderr.flush()

    def __call__(self, full_command: list[str], env_vars: dict | None = None) -> int:
        parsed = parse_task_command(full_command)
        if parsed is not None and not env_vars and not self.ready.is_set():
            function = parsed[1][parsed[1].index("--function_to_execute") + 1]
            if function not in COLD_WHILE_WARMING:
                self.ready.wait(READY_TIMEOUT_SECONDS)
        if parsed is None or env_vars or not self.ready.is_set():
            self.cold_tasks += 1
            return self.fallback(full_command=full_command, env_vars=env_vars)
        source, args = parsed
        with tempfile.TemporaryDirectory(prefix="imgclf-step-") as tmp:
            module_path = Path(tmp) / "ephemeral_component.py"
            module_path.write_text(source)
            sys.stdout.flush()
            process = self.ctx.Process(target=_run_task, args=(str(module_path), args), name="kfp-step")
            process.start()
            process.join()
        self.warm_tasks += 1
        print()  # kfp's launcher also ends a task's log with a blank line
        return 0 if process.exitcode == 0 else 1


@contextlib.contextmanager
def warm_steps(enabled: bool = True, preload=PRELOAD):
    """Within the block, kfp's SubprocessRunner forks tasks from the warm server; yields the launcher (or None)."""
    if not enabled:
        yield None
        return
    from kfp.local import subprocess_task_handler as handler

    original = handler.run_local_subprocess
    launcher = WarmLauncher(original, preload)
    launcher.start()
    handler.run_local_subprocess = launcher
    try:
        yield launcher
    finally:
        handler.run_local_subprocess = original
        launcher.finish()
