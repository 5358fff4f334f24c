"""`make bench`: every speed figure of issue 13 as a ratio measured in one run, written to a JSON file.

    .venv/bin/python bench/bench.py [--quick] [--only pipeline,train,tune,serve,jax] [--output bench/results.json]

Sections (each runs its commands as child processes, so wall time and peak memory are
whole-process figures; pairs are interleaved A B A B so machine drift hits both):
  pipeline  `python -m pipelines.local_runner` wall / bench/bare_train.py wall, same epochs and images;
            peak RSS of the run (largest process, and the process tree summed); full mode also runs
            it with --cold-steps (kfp's own launcher) and --serial-steps (kfp's own one-at-a-time
            order) in the same rotation
  train     trainer samples/s / bare model.fit samples/s, same batch (bench/train_speed.py)
  tune      `imgclf-tune` (successive halving) wall / bench/seed_search.py wall, best val accuracy of both
            (ours: the pick retrained by the trainer; also retrained with a constant learning rate)
  serve     `make serve` vs in-process (bench/serve_bench.py, on the model the pipeline section pushed)
  jax       the trainer on Keras' JAX backend / a hand-written jitted JAX step (bench/jax_step.py)
--quick shrinks every section (fewer images, epochs, trials, rounds) to finish in about 2 minutes on
2 cores; its ratios are smoke figures (fixed start-up costs weigh more on small runs), the full
run's are the ones to quote. The load average before and after each section is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
PY = sys.executable
SECTIONS = ("pipeline", "train", "tune", "serve", "jax")

FULL = {"train_examples": 48000, "eval_fraction": 0.2, "epochs": 3, "pairs": 3, "train_rounds": 2,
        "tune_trials": 10, "tune_epochs": 3, "serve_n": 300, "serve_batches": 60,
        "jax_examples": 8192, "jax_epochs": 2}
QUICK = {"train_examples": 6000, "eval_fraction": 0.2, "epochs": 1, "pairs": 1, "train_rounds": 1,
         "tune_trials": 3, "tune_epochs": 1, "serve_n": 100, "serve_batches": 20,
         "jax_examples": 4096, "jax_epochs": 2}


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


class TreeSampler:
    """Samples the resident memory of a process and its descendants (Linux /proc) every 0.1 s."""

    def __init__(self, pid: int):
        self.pid, self.peak_single, self.peak_total = pid, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _tree(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                children.setdefault(ppid, []).append(int(entry))
        out, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            todo.extend(children.get(pid, []))
        return out

    def _run(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        while not self._stop.wait(0.1):
            sizes = []
            for pid in self._tree():
                try:
                    sizes.append(int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page)
                except (OSError, IndexError, ValueError):
                    pass
            if sizes:
                self.peak_single = max(self.peak_single, max(sizes))
                self.peak_total = max(self.peak_total, sum(sizes))

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        return {"peak_rss_mib": round(self.peak_single / 2**20, 1),
                "peak_rss_tree_mib": round(self.peak_total / 2**20, 1)}


def run(cmd: list[str], memory: bool = False, env: dict | None = None, timeout: float = 3600) -> dict:
    """Run cmd to the end; wall seconds, stdout, its last JSON line (if any), peak RSS (if memory)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})})
    sampler = TreeSampler(proc.pid) if memory else None
    out, err = proc.communicate(timeout=timeout)
    wall = time.perf_counter() - start
    result = {"wall_seconds": round(wall, 2), "rc": proc.returncode, **(sampler.stop() if sampler else {})}
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{err[-3000:]}")
    for line in reversed(out.splitlines()):
        if line.startswith("{") and line.rstrip().endswith("}"):
            try:
                result["json"] = json.loads(line)
                break
            except ValueError:  # a log line that only looks like JSON
                continue
    result["stdout"] = out
    return result


def median(values):
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def section_pipeline(cfg: dict, work: Path) -> dict:
    n, epochs = cfg["train_examples"], cfg["epochs"]
    total = int(round(n / (1 - cfg["eval_fraction"])))  # ingest keeps eval_fraction of these for validation
    push_base = work / "serving"
    # accuracy_threshold=0: always push, so the serve section has a model even after a 1-epoch quick run.
    local = [PY, "-m", "pipelines.local_runner", "--push-base", str(push_base), "--epochs", str(epochs),
             "--param", "accuracy_threshold=0",
             "--param", f"max_train_examples={total if cfg is QUICK else 0}",
             "--param", f"max_test_examples={2000 if cfg is QUICK else 0}"]
    bare = [PY, str(BENCH / "bare_train.py"), "--train-examples", str(n), "--eval-examples", str(total - n),
            "--epochs", str(epochs)]
    if cfg is QUICK:
        bare += ["--test-examples", "2000"]
    commands = [("local", local), ("bare", bare)]
    if cfg is FULL:  # the levers: kfp's own launcher (every step a fresh interpreter), kfp's own serial order
        commands += [("local_cold", [*local, "--cold-steps"]), ("local_serial", [*local, "--serial-steps"])]
    rows = []
    for i in range(cfg["pairs"]):
        order = commands if i % 2 == 0 else commands[::-1]
        pair = {}
        for name, cmd in order:
            pair[name] = run(cmd, memory=True)
            print(f"  pipeline pair {i + 1}: {name} {pair[name]['wall_seconds']} s", file=sys.stderr, flush=True)
        rows.append(pair)
    local_walls = [p["local"]["wall_seconds"] for p in rows]
    bare_walls = [p["bare"]["wall_seconds"] for p in rows]
    steps = _step_seconds(rows[-1]["local"]["stdout"])
    cold = {}
    if "local_cold" in rows[0]:
        cold = {"run_local_cold_steps_wall_seconds": [p["local_cold"]["wall_seconds"] for p in rows],
                "ratio_warm_to_cold_steps": round(median([p["local"]["wall_seconds"] / p["local_cold"]["wall_seconds"]
                                                          for p in rows]), 3),
                "run_local_cold_step_seconds": _step_seconds(rows[-1]["local_cold"]["stdout"]),
                "run_local_cold_peak_rss_mib": max(p["local_cold"]["peak_rss_mib"] for p in rows),
                "run_local_serial_steps_wall_seconds": [p["local_serial"]["wall_seconds"] for p in rows],
                "ratio_side_tasks_to_serial": round(median([p["local"]["wall_seconds"]
                                                            / p["local_serial"]["wall_seconds"] for p in rows]), 3),
                "run_local_serial_step_seconds": _step_seconds(rows[-1]["local_serial"]["stdout"]),
                "run_local_serial_peak_rss_tree_mib": max(p["local_serial"]["peak_rss_tree_mib"] for p in rows)}
    return {**cold,
        "train_examples": n, "epochs": epochs,
        "run_local_wall_seconds": local_walls, "bare_script_wall_seconds": bare_walls,
        "ratio_run_local_to_bare": round(median([p["local"]["wall_seconds"] / p["bare"]["wall_seconds"]
                                                 for p in rows]), 3),
        "target_ratio_max": 1.3,
        "run_local_peak_rss_mib": max(p["local"]["peak_rss_mib"] for p in rows),
        "run_local_peak_rss_tree_mib": max(p["local"]["peak_rss_tree_mib"] for p in rows),
        "bare_peak_rss_mib": max(p["bare"]["peak_rss_mib"] for p in rows),
        "bare_test_accuracy": rows[-1]["bare"]["json"]["test_accuracy"],
        "run_local_test_accuracy": _test_accuracy(rows[-1]["local"]["stdout"]),
        "run_local_step_seconds": steps,
        "push_base": str(push_base),
    }


def _step_seconds(log: str) -> dict:
    """Seconds per task from kfp's 'Executing task' / 'finished' log lines (HH:MM:SS.mmm prefixes)."""
    import re

    clean = re.sub(r"\x1b\[[0-9;]*m", "", log)
    starts, out = {}, {}
    for m in re.finditer(r"^(\d\d):(\d\d):(\d\d\.\d+) - INFO - (Executing task|Task) '([\w-]+)'( finished)?",
                         clean, re.M):
        t = int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])
        if m[4] == "Executing task":
            starts[m[5]] = t
        elif m[6] and m[5] in starts:
            out[m[5]] = round(t - starts[m[5]], 2)
    return out


def _test_accuracy(log: str):
    for line in log.splitlines():
        if line.startswith("test accuracy"):
            return float(line.split()[-1])
    return None


def section_train(cfg: dict, dataset: str) -> dict:
    cmd = [PY, str(BENCH / "train_speed.py"), "--dataset", dataset, "--examples", str(cfg["train_examples"]),
           "--epochs", str(max(2, cfg["epochs"])), "--rounds", str(cfg["train_rounds"]),
           "--variants", "ours" if cfg is QUICK else "ours,float32,shuffle-buffer,gather,spe1"]
    result = run(cmd)["json"]
    result["ratio_trainer_to_bare_fit"] = result["ours"]["ratio_to_bare"]
    if "float32" in result:  # the bf16 lever: ours in the bare script's precision
        result["ratio_trainer_float32_to_bare_fit"] = result["float32"]["ratio_to_bare"]
    result["target_ratio_min"] = 1.0
    return result


def section_tune(cfg: dict, dataset: str, work: Path) -> dict:
    trials, epochs = cfg["tune_trials"], cfg["tune_epochs"]
    seed_cmd = [PY, str(BENCH / "seed_search.py"), "--dataset", dataset, "--output", str(work / "seed"),
                "--max-trials", str(trials), "--epochs", str(epochs)]
    def ours_cmd(output: str, *extra: str) -> list[str]:
        return [PY, "-m", "imgclf.steps.tune", "--dataset", dataset, "--output", str(work / output),
                "--algorithm", "halving", "--max-trials", str(trials), "--epochs", str(epochs),
                "--final-retrain", *extra]

    seed = run(seed_cmd)
    ours = run(ours_cmd("ours"))
    s, o = seed["json"], ours["json"]
    # The learning-rate schedule as a lever: the same pick retrained with a constant learning rate
    # (full mode only: --quick keeps to its 2 minutes).
    constant_val = None
    if cfg is FULL:
        constant = work / "ours-constant-lr"
        run([PY, "-m", "imgclf.steps.train", "--dataset", dataset, "--output", str(constant),
             "--hparams-json", str(work / "ours" / "best_hyperparameters.json"), "--min-lr-fraction", "1",
             "--metrics-format", "katib"])
        constant_val = json.loads((constant / "history.json").read_text())["val_accuracy"][-1]
    # The bf16 lever in the search: the same search and retrain in float32 (full mode, on bf16 hardware only).
    float32 = None
    if cfg is FULL and o.get("precision") == "mixed_bfloat16":
        float32 = run(ours_cmd("ours-float32", "--precision", "float32"))["json"]
    return {
        "trials": trials, "epochs_per_trial": epochs,
        "seed_search_seconds": s["search_seconds"], "seed_best_val_accuracy": s["best_val_accuracy"],
        "ours_search_seconds": o["seconds"], "ours_final_retrain_seconds": o.get("final_retrain_seconds"),
        "ours_best_val_accuracy": o.get("final_val_accuracy"),
        "ours_proxy_best_val_accuracy": o.get("best_val_accuracy"),
        "ours_constant_lr_val_accuracy": constant_val,  # the pick retrained with min_lr_fraction=1
        "ours_precision": o.get("precision"),
        "ours_float32_search_seconds": float32 and float32["seconds"],
        "ours_float32_final_retrain_seconds": float32 and float32.get("final_retrain_seconds"),
        "ours_float32_best_val_accuracy": float32 and float32.get("final_val_accuracy"),
        "ours_float32_best_hyperparameters": float32 and float32.get("best_hyperparameters"),
        "ratio_search_wall": round(o["seconds"] / s["search_seconds"], 3),
        "target_ratio_max": 0.3,
        "accuracy_at_least_equal": (o.get("final_val_accuracy") or 0) >= s["best_val_accuracy"],
        "seed_best_hyperparameters": s["best_hyperparameters"], "ours_best_hyperparameters": o["best_hyperparameters"],
    }


def section_serve(cfg: dict, push_base: str) -> dict:
    cmd = [PY, str(BENCH / "serve_bench.py"), "--push-base", push_base, "--n", str(cfg["serve_n"]),
           "--batches", str(cfg["serve_batches"]), "--json"]
    result = run(cmd, memory=True)
    out = result["json"]
    out["serve_process_peak_rss_mib"] = out.pop("server_peak_rss_mib", None)
    out["targets"] = {"batch64_ratio_min": 0.6, "p99_ratio_max": 2.0}
    return out


def section_jax(cfg: dict, dataset: str) -> dict:
    cmd = [PY, str(BENCH / "jax_step.py"), "--dataset", dataset, "--examples", str(cfg["jax_examples"]),
           "--epochs", str(cfg["jax_epochs"])]
    return run(cmd, env={"KERAS_BACKEND": "jax"})["json"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run in about 2 minutes")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(SECTIONS)} (default: all; "
                                       f"--quick: all but jax, whose XLA compile alone takes minutes on CPU)")
    parser.add_argument("--output", default=None, help="JSON file (default bench/results[-quick].json)")
    parser.add_argument("--pairs", type=int, help="rotations of the pipeline section (default: full 3, quick 1)")
    parser.add_argument("--rounds", type=int, help="rounds of the train section (default: full 2, quick 1)")
    args = parser.parse_args()
    cfg = QUICK if args.quick else FULL
    for key, value in (("pairs", args.pairs), ("train_rounds", args.rounds)):
        if value:
            cfg[key] = value  # the dict itself: sections tell full from quick by identity
    chosen = [s for s in (args.only or ",".join(SECTIONS[:-1] if args.quick else SECTIONS)).split(",") if s]
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        raise SystemExit(f"--only: unknown section(s) {', '.join(unknown)} (known: {', '.join(SECTIONS)})")
    output = Path(args.output or BENCH / ("results-quick.json" if args.quick else "results.json"))

    started = time.perf_counter()
    report = {"mode": "quick" if args.quick else "full", "cpus": os.cpu_count(), "machine": platform.machine(),
              "python": platform.python_version(), "accelerator": "none (CPU only)", "config": cfg, "sections": {}}
    with tempfile.TemporaryDirectory(prefix="imgclf-bench-") as tmp:
        work = Path(tmp)
        dataset = str(work / "dataset")
        n_total = int(round(cfg["train_examples"] / (1 - cfg["eval_fraction"])))
        run([PY, "-m", "imgclf.steps.ingest", "--output", dataset,
             *(["--max-train-examples", str(n_total), "--max-test-examples", "2000"] if args.quick else [])])
        push_base = str(work / "serving")
        for name in chosen:
            before = load()
            print(f"[bench] {name} (load average {before})", file=sys.stderr, flush=True)
            t = time.perf_counter()
            if name == "pipeline":
                result = section_pipeline(cfg, work)
            elif name == "train":
                result = section_train(cfg, dataset)
            elif name == "tune":
                result = section_tune(cfg, dataset, work)
            elif name == "serve":
                if not Path(push_base).exists():  # no pipeline section this run: push one small model
                    section_pipeline(QUICK, work)
                result = section_serve(cfg, push_base)
            else:
                result = section_jax(cfg, dataset)
            result["load_average_before"], result["load_average_after"] = before, load()
            result["section_seconds"] = round(time.perf_counter() - t, 1)
            report["sections"][name] = result
            output.write_text(json.dumps(report, indent=2) + "\n")  # a cut-off run keeps its finished sections
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print_summary(report)
    print(f"written to {output}")


def print_summary(report: dict) -> None:
    s = report["sections"]
    print(f"imgclf bench ({report['mode']}, {report['cpus']} CPUs, {report['accelerator']}, "
          f"{report['total_seconds']} s)")
    if "pipeline" in s:
        p = s["pipeline"]
        print(f"  run-local / bare script wall   {p['ratio_run_local_to_bare']:.2f}  (target <= 1.3; "
              f"{p['run_local_wall_seconds']} s vs {p['bare_script_wall_seconds']} s; peak RSS run-local "
              f"{p['run_local_peak_rss_mib']} MiB largest process, {p['run_local_peak_rss_tree_mib']} MiB all; "
              f"load {p['load_average_before']})")
        if "ratio_warm_to_cold_steps" in p:
            print(f"    levers: warm steps / --cold-steps {p['ratio_warm_to_cold_steps']:.2f}, side tasks beside the "
                  f"main line / --serial-steps {p['ratio_side_tasks_to_serial']:.2f}")
    if "train" in s:
        t = s["train"]
        print(f"  trainer / bare fit samples/s   {t['ratio_trainer_to_bare_fit']:.2f}  (target >= 1.0; "
              f"{t['ours']['samples_per_second']:.0f} vs {t['bare']['samples_per_second']:.0f}; validation "
              f"{t['ours']['validation_seconds_per_epoch']} s/epoch apart; {t['ours_precision']}; "
              f"load {t['load_average_before']})")
        if "ratio_trainer_float32_to_bare_fit" in t:
            print(f"    lever: ours in float32 / bare fit {t['ratio_trainer_float32_to_bare_fit']:.2f}")
    if "tune" in s:
        u = s["tune"]
        print(f"  tune / seed-style search wall  {u['ratio_search_wall']:.2f}  (target <= 0.3; "
              f"{u['ours_search_seconds']} s vs {u['seed_search_seconds']} s; best val accuracy "
              f"{u['ours_best_val_accuracy']} vs {u['seed_best_val_accuracy']}"
              + (f", {u['ours_constant_lr_val_accuracy']} with a constant learning rate"
                 if u.get("ours_constant_lr_val_accuracy") is not None else "")
              + f"; {u.get('ours_precision')}; load {u['load_average_before']})")
        if u.get("ours_float32_search_seconds") is not None:
            print(f"    lever: the same search in float32 {u['ours_float32_search_seconds']} s, best val accuracy "
                  f"{u['ours_float32_best_val_accuracy']}")
    if "serve" in s:
        v = s["serve"]
        print(f"  serve / in-process batch-64    {v['ratio_batch_throughput']:.2f}  (target >= 0.6); single p99 "
              f"{v['ratio_p99']:.2f}x (target <= 2); b64 batch-64 {v.get('ratio_batch_throughput_b64', 'n/a')}; "
              f"peak RSS serve {v.get('serve_process_peak_rss_mib')} MiB; load {v['load_average_before']}")
    if "jax" in s:
        j = s["jax"]
        print(f"  JAX trainer / jitted JAX step  {j['ratio_trainer_to_reference']:.2f}  (target >= 0.5; "
              f"{j['trainer_samples_per_second']:.0f} vs {j['reference_samples_per_second']:.0f} samples/s, "
              f"batch {j['batch_size']}; load {j['load_average_before']})")


if __name__ == "__main__":
    main()
