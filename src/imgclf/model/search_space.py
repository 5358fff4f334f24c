"""The one hyperparameter search space (search_space.yaml), loaded into typed, validated dataclasses.

KerasTuner (steps/tune.py), the Katib Experiment generator (katib_experiment.py)
and the Katib client read it through this module; parameter names are
HyperParams fields, so a tuner's answer feeds HyperParams.from_dict and the
trainer's --flags unchanged. Every rule breaks with one UserError line that
names the file and the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path

from imgclf.errors import UserError
from imgclf.model.hyperparams import HyperParams, tunable_fields

DEFAULT_PATH = Path(__file__).with_name("search_space.yaml")
PARAMETER_TYPES = ("int", "float", "choice")
SCALES = ("linear", "log")
ALGORITHMS = ("bayesian", "random", "hyperband", "halving")
DIRECTIONS = ("maximize", "minimize")
# `epochs` is the trial budget (budget.epochs_per_trial), not a tunable parameter.
TUNABLE_FIELDS = tunable_fields()
_FIELD_TYPES = {f.name: f.type for f in fields(HyperParams)}


@dataclass(frozen=True)
class Parameter:
    """One tunable HyperParams field: int range, float range (linear/log; a linear one may have a step), or a choice list.

    A step makes the range a grid min, min + step, ..., max (`grid()`). Both tuners then sample that
    grid: KerasTuner through hp.Int(step=...) or an ordered hp.Choice of the float grid, Katib through a
    `discrete` list (its skopt-based bayesianoptimization ignores steps, and `distribution` on a double).
    """

    name: str
    type: str
    min: float | int | None = None
    max: float | int | None = None
    step: float | int | None = None
    scale: str = "linear"
    values: tuple = ()

    @property
    def is_integer(self) -> bool:
        return _FIELD_TYPES[self.name] == "int"

    def contains(self, value) -> bool:
        """Whether value is a point of this parameter's space (on the step grid for int)."""
        if self.type == "choice":
            return value in self.values
        if self.step is None:
            return self.min <= value <= self.max and (self.type == "float" or value == int(value))
        return any(math.isclose(value, v, rel_tol=1e-9, abs_tol=1e-12) for v in self.grid())

    def grid(self) -> tuple:
        """The points of a stepped range, min to max inclusive (float points rounded to 12 significant digits)."""
        if self.step is None:
            raise UserError(f"parameter {self.name}: a range without a step has no grid")
        count = _grid_steps(self.min, self.max, self.step)
        if self.type == "int":
            return tuple(int(self.min) + i * int(self.step) for i in range(count + 1))
        return tuple(float(f"{self.min + i * self.step:.12g}") for i in range(count + 1))

    def cast(self, value) -> int | float:
        """A value (number, or the string Katib hands over) as this field's Python type."""
        number = float(value)
        if self.is_integer:
            if number != int(number):
                raise UserError(f"hyperparameter {self.name}={value!r}: expected an integer")
            return int(number)
        if self.step is not None:
            return float(f"{number:.12g}")  # a grid point: KerasTuner's min + k * step is 0.30000000000000004
        return number


@dataclass(frozen=True)
class Objective:
    metric: str = "val_accuracy"
    direction: str = "maximize"
    additional_metrics: tuple[str, ...] = ()


@dataclass(frozen=True)
class Budget:
    max_trials: int = 10
    epochs_per_trial: int = 3
    parallel_trials: int = 1
    max_failed_trials: int = 3
    initial_random_trials: int = 3
    early_stopping_patience: int = 1


@dataclass(frozen=True)
class SearchSpace:
    objective: Objective
    algorithm: str
    budget: Budget
    parameters: tuple[Parameter, ...]
    source: str = "search space"

    def parameter(self, name: str) -> Parameter:
        for p in self.parameters:
            if p.name == name:
                return p
        raise UserError(f"{self.source}: no parameter named {name!r}")

    def to_hyperparams(self, values: dict, source: str = "tuner result") -> HyperParams:
        """Tuned values (numbers or strings) -> full HyperParams; untuned fields keep their defaults."""
        unknown = sorted(set(values) - {p.name for p in self.parameters})
        if unknown:
            raise UserError(f"{source}: value(s) for {', '.join(unknown)} not in the search space {self.source}")
        cast = {p.name: p.cast(values[p.name]) for p in self.parameters if p.name in values}
        return HyperParams.from_dict(cast, source=source)


def load(path: str | Path | None = None) -> SearchSpace:
    """Read and validate a search-space YAML file (default: the packaged search_space.yaml)."""
    import yaml

    path = Path(path) if path else DEFAULT_PATH
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: no such search-space file") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: invalid YAML ({' '.join(str(exc).split())})") from None
    return parse(raw, source=str(path))


def parse(raw, source: str = "search space") -> SearchSpace:
    """Validate a search space given as plain data (the parsed YAML)."""
    where = source
    if not isinstance(raw, dict):
        raise UserError(f"{where}: expected a mapping with objective, algorithm, budget, parameters")
    _no_unknown(raw, {"objective", "algorithm", "budget", "parameters"}, where)

    obj_raw = _mapping(raw.get("objective", {}), f"{where}: objective")
    _no_unknown(obj_raw, {"metric", "direction", "additional_metrics"}, f"{where}: objective")
    objective = Objective(
        metric=_name(obj_raw.get("metric", Objective.metric), f"{where}: objective.metric"),
        direction=_one_of(obj_raw.get("direction", Objective.direction), DIRECTIONS, f"{where}: objective.direction"),
        additional_metrics=tuple(_name(m, f"{where}: objective.additional_metrics")
                                 for m in _list(obj_raw.get("additional_metrics", []),
                                                f"{where}: objective.additional_metrics")),
    )
    if objective.metric in objective.additional_metrics:
        raise UserError(f"{where}: objective.additional_metrics repeats the objective metric {objective.metric!r}")

    algorithm = _one_of(raw.get("algorithm", "bayesian"), ALGORITHMS, f"{where}: algorithm")

    budget_raw = _mapping(raw.get("budget", {}), f"{where}: budget")
    known = {f.name for f in fields(Budget)}
    _no_unknown(budget_raw, known, f"{where}: budget")
    minimum = {"max_failed_trials": 0}
    budget = Budget(**{k: _int(v, f"{where}: budget.{k}", minimum.get(k, 1)) for k, v in budget_raw.items()})
    if budget.parallel_trials > budget.max_trials:
        raise UserError(f"{where}: budget.parallel_trials {budget.parallel_trials} > max_trials {budget.max_trials}")
    if budget.max_failed_trials > budget.max_trials:
        raise UserError(f"{where}: budget.max_failed_trials {budget.max_failed_trials} > max_trials {budget.max_trials}")

    params_raw = _list(raw.get("parameters"), f"{where}: parameters")
    if not params_raw:
        raise UserError(f"{where}: parameters: empty list, give at least one parameter")
    parameters: list[Parameter] = []
    for i, item in enumerate(params_raw):
        name = item.get("name") if isinstance(item, dict) else None
        if any(q.name == name for q in parameters):
            raise UserError(f"{where}: parameters[{i}]: duplicate parameter name {name!r}")
        parameters.append(_parameter(item, f"{where}: parameters[{i}]"))
    return SearchSpace(objective, algorithm, budget, tuple(parameters), source)


def _parameter(item, where: str) -> Parameter:
    item = _mapping(item, where)
    name = item.get("name")
    if name not in TUNABLE_FIELDS:
        hint = " (epochs is budget.epochs_per_trial)" if name == "epochs" else ""
        raise UserError(f"{where}: name {name!r} is not a tunable HyperParams field{hint} "
                        f"(known: {', '.join(TUNABLE_FIELDS)})")
    where = f"{where} {name!r}"
    ptype = _one_of(item.get("type"), PARAMETER_TYPES, f"{where}: type")
    integer = _FIELD_TYPES[name] == "int"
    if ptype == "choice":
        _no_unknown(item, {"name", "type", "values"}, where)
        values = _list(item.get("values"), f"{where}: values")
        if not values:
            raise UserError(f"{where}: values: empty choice list")
        values = tuple(_number(v, f"{where}: values", integer) for v in values)
        if len(set(values)) != len(values):
            raise UserError(f"{where}: values: duplicates in {list(values)}")
        for v in values:
            _check_field(name, v, f"{where}: values")
        return Parameter(name, ptype, values=values)
    if ptype == "int" and not integer:
        raise UserError(f"{where}: type int for a float field; use type float or choice")
    if ptype == "float" and integer:
        raise UserError(f"{where}: type float for an integer field; use type int or choice")
    _no_unknown(item, {"name", "type", "min", "max", "step", "scale"}, where)
    for key in ("min", "max"):
        if key not in item:
            raise UserError(f"{where}: {key} is required for type {ptype}")
    low = _number(item["min"], f"{where}: min", integer)
    high = _number(item["max"], f"{where}: max", integer)
    if low > high:
        raise UserError(f"{where}: min {low} > max {high}")
    scale = _one_of(item.get("scale", "linear"), SCALES, f"{where}: scale")
    if scale == "log" and low <= 0:
        raise UserError(f"{where}: scale log needs min > 0, got {low}")
    step = None
    if item.get("step") is not None:
        if scale == "log":
            raise UserError(f"{where}: scale log cannot be combined with step")
        step = _int(item["step"], f"{where}: step", 1) if integer else _number(item["step"], f"{where}: step", False)
        if step <= 0:
            raise UserError(f"{where}: step: {step} must be > 0")
        if _grid_steps(low, high, step) is None:
            raise UserError(f"{where}: step {step} does not divide max - min ({high} - {low}) into whole steps")
    for v in (low, high):
        _check_field(name, v, f"{where}: min/max")
    return Parameter(name, ptype, min=low, max=high, step=step, scale=scale)


def _grid_steps(low, high, step) -> int | None:
    """How many steps lead from low to high (None when step does not divide the range)."""
    steps = (high - low) / step
    whole = round(steps)
    return whole if math.isclose(steps, whole, rel_tol=1e-9, abs_tol=1e-9) else None


def _check_field(name: str, value, where: str) -> None:
    """The value must be one HyperParams accepts (batch_size >= 1, 0 <= dropout < 1, ...)."""
    try:
        HyperParams(**{name: value})
    except UserError as exc:
        raise UserError(f"{where}: {exc}") from None


def _number(value, where: str, integer: bool):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{where}: {value!r} is not a number")
    if not math.isfinite(value):
        raise UserError(f"{where}: {value!r} is not a finite number")
    if integer:
        if value != int(value):
            raise UserError(f"{where}: {value!r} is not an integer")
        return int(value)
    return float(value)


def _int(value, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{where}: {value!r} is not an integer")
    if value < minimum:
        raise UserError(f"{where}: {value} must be >= {minimum}")
    return value


def _one_of(value, allowed, where: str) -> str:
    if value not in allowed:
        raise UserError(f"{where}: {value!r} is not one of {', '.join(allowed)}")
    return value


def _name(value, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"{where}: {value!r} is not a metric name")
    return value


def _mapping(value, where: str) -> dict:
    if not isinstance(value, dict):
        raise UserError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _list(value, where: str) -> list:
    if not isinstance(value, list):
        raise UserError(f"{where}: expected a list, got {type(value).__name__}")
    return value


def _no_unknown(mapping: dict, known: set, where: str) -> None:
    unknown = sorted(set(mapping) - known)
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(map(str, unknown))} (known: {', '.join(sorted(known))})")
