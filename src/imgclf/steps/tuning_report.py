"""A self-contained Markdown report of a hyperparameter search (KFP's Markdown viewer renders it as is)."""

from __future__ import annotations

from imgclf.model.search_space import SearchSpace


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def trials_markdown(space: SearchSpace, trials, best_id: str, metrics: dict, trial_seconds: dict) -> str:
    """One row per KerasTuner trial, best first; the best row is marked. `trials` are keras_tuner Trial objects."""
    metric = space.objective.metric
    names = [p.name for p in space.parameters]
    lines = [
        f"# Hyperparameter search: {metrics['algorithm']}",
        "",
        f"Best {metric}: **{metrics[f'best_{metric}']:.4f}** (trial {best_id}); "
        f"{metrics['trials_total']} trials ({metrics['trials_failed']} failed), "
        f"{metrics['trials_run']} run in {metrics['seconds']:.0f} s by the last invocation, "
        f"{metrics['epochs_per_trial']} epochs per trial at most.",
        "",
        "| trial | status | " + f"{metric} | best epoch | seconds | " + " | ".join(names) + " |",
        "|" + "---|" * (5 + len(names)),
    ]
    reverse = space.objective.direction == "maximize"
    ordered = sorted(trials, key=lambda t: (t.score is None, -(t.score or 0) if reverse else (t.score or 0)))
    for t in ordered:
        mark = " (best)" if t.trial_id == best_id else ""
        values = t.hyperparameters.values
        epoch = t.best_step + 1 if t.score is not None else None
        row = [f"{t.trial_id}{mark}", t.status.lower(), _cell(t.score), _cell(epoch),
               _cell(trial_seconds.get(t.trial_id)), *(_cell(values.get(n)) for n in names)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"
