"""Run parameters for a compiled pipeline: read `--param name=value` flags and a params file,
check each name against the pipeline's root inputDefinitions and cast each value to the
declared type, all offline, before anything contacts a KFP server.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml

from imgclf import settings
from imgclf.errors import UserError

TYPE_LABELS = {
    "STRING": "string",
    "NUMBER_INTEGER": "integer",
    "NUMBER_DOUBLE": "number",
    "BOOLEAN": "boolean (true/false)",
    "LIST": "JSON list",
    "STRUCT": "JSON object",
}
_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}


def declared_parameters(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """name -> {parameterType, defaultValue?, isOptional?} from the PipelineSpec's root."""
    return dict(spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {}))


def parse_param_flags(flags: list[str]) -> dict[str, str]:
    """['a=1', 'b=x=y'] -> {'a': '1', 'b': 'x=y'}; UserError for a flag without '='."""
    values: dict[str, str] = {}
    for flag in flags:
        name, sep, value = flag.partition("=")
        if not sep or not name.strip():
            raise UserError(f"--param {flag!r}: expected name=value")
        values[name.strip()] = value
    return values


def load_params_file(path: Path) -> dict[str, Any]:
    """A YAML (or JSON) mapping of parameter name to value."""
    if not path.is_file():
        raise UserError(f"params file {path} not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise UserError(f"params file {path}: not valid YAML: {str(exc).splitlines()[0]}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise UserError(f"params file {path}: expected a mapping of parameter name to value")
    return data


def _from_text(ptype: str, text: str) -> Any:
    """Cast command-line text to the declared type; ValueError when it does not fit."""
    if ptype == "STRING":
        return text
    if ptype == "NUMBER_INTEGER":
        return int(text.strip())
    if ptype == "NUMBER_DOUBLE":
        value = float(text.strip())
        if not math.isfinite(value):
            raise ValueError("not finite")
        return value
    if ptype == "BOOLEAN":
        lowered = text.strip().lower()
        if lowered in _TRUE or lowered in _FALSE:
            return lowered in _TRUE
        raise ValueError("not a boolean")
    return _from_typed(ptype, json.loads(text))


def _from_typed(ptype: str, value: Any) -> Any:
    """Check an already-typed value (from YAML/JSON) against the declared type."""
    if ptype == "STRING" and isinstance(value, str):
        return value
    if ptype == "NUMBER_INTEGER" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if ptype == "NUMBER_DOUBLE" and isinstance(value, (int, float)) and not isinstance(value, bool):
        if math.isfinite(value):
            return float(value)
    if ptype == "BOOLEAN" and isinstance(value, bool):
        return value
    if ptype == "LIST" and isinstance(value, list):
        return value
    if ptype == "STRUCT" and isinstance(value, dict):
        return value
    raise ValueError(f"got {type(value).__name__}")


def cast_value(name: str, ptype: str, value: Any, source: str) -> Any:
    """The value cast to the declared KFP parameter type, or UserError naming name, value and source."""
    if ptype not in TYPE_LABELS:
        raise UserError(f"parameter {name}: unsupported declared type {ptype!r}")
    try:
        if isinstance(value, str):
            return _from_text(ptype, value)
        return _from_typed(ptype, value)
    except (ValueError, TypeError) as exc:
        label = TYPE_LABELS[ptype]
        raise UserError(f"parameter {name}={value!r} ({source}) is not a valid {label}: {exc}") from exc


def resolve_parameters(
    declared: dict[str, dict[str, Any]],
    file_values: dict[str, Any],
    flag_values: dict[str, str],
    file_label: str = "params file",
) -> dict[str, Any]:
    """Merge file values and flags (flags win), check names and cast to declared types.

    Returns only the parameters given (the server applies the compiled defaults).
    Raises UserError for an unknown name, an uncastable value or a missing required one.
    """
    known = ", ".join(sorted(declared)) or "(none)"
    resolved: dict[str, Any] = {}
    for source, values in ((file_label, file_values), ("--param", flag_values)):
        for name, value in values.items():
            if name not in declared:
                raise UserError(f"unknown parameter {name!r} ({source}); the pipeline takes: {known}")
            ptype = declared[name].get("parameterType", "STRING")
            resolved[name] = cast_value(name, ptype, value, source)
            choices = settings.PARAMETER_CHOICES.get(name)
            if choices and resolved[name] not in choices:
                raise UserError(f"parameter {name}={value!r} ({source}) must be one of {', '.join(choices)}")
    for name, spec in declared.items():
        required = not spec.get("isOptional", False) and "defaultValue" not in spec
        if required and name not in resolved:
            raise UserError(f"missing required parameter {name!r}: pass --param {name}=VALUE")
    return resolved


# What each value means, checked before any step starts (`make run-local` and `make submit`).
AT_LEAST_ONE = ("epochs", "batch_size")
AT_LEAST_ZERO = ("max_train_examples", "max_test_examples", "label_audit_examples", "tune_max_trials",
                 "tune_epochs", "dense_units")
FRACTIONS_CLOSED = ("accuracy_threshold", "change_tolerance", "dropout", "min_lr_fraction")  # in [0, 1]
FRACTIONS_OPEN = ("eval_fraction",)  # in (0, 1)
URIS = ("data_uri", "push_base")  # must be given; schema_uri and reference_statistics_uri may be ''
OPTIONAL_URIS = ("schema_uri", "reference_statistics_uri")
PLACEHOLDER_MARK = "YOUR_"


def effective_values(declared: dict[str, dict[str, Any]], given: dict[str, Any]) -> dict[str, Any]:
    """The values a run will use: the compiled defaults, overridden by the given parameters."""
    values = {name: spec["defaultValue"] for name, spec in declared.items() if "defaultValue" in spec}
    return {**values, **given}


def check_values(values: dict[str, Any], how_to_set: str = "--param NAME=VALUE") -> None:
    """UserError (one line naming the parameter, its value and how to set it) for a value a run cannot use.

    Ranges, known tuner and algorithm names, URI schemes, and placeholders (YOUR_...) left in any value.
    """
    from imgclf.data import storage
    from imgclf.model.search_space import ALGORITHMS

    def bad(name: str, why: str) -> UserError:
        return UserError(f"parameter {name}={values[name]!r} {why}; set it with {how_to_set.replace('NAME', name)}")

    for name, value in values.items():
        if isinstance(value, str) and PLACEHOLDER_MARK in value:
            raise bad(name, "still holds a placeholder")
    for name in AT_LEAST_ONE:
        if name in values and values[name] < 1:
            raise bad(name, "must be at least 1")
    for name in AT_LEAST_ZERO:
        if name in values and values[name] < 0:
            raise bad(name, "must be 0 or more")
    for name in FRACTIONS_CLOSED:
        if name in values and not 0.0 <= values[name] <= 1.0:
            raise bad(name, "must be in [0, 1]")
    for name in FRACTIONS_OPEN:
        if name in values and not 0.0 < values[name] < 1.0:
            raise bad(name, "must be in (0, 1), exclusive")
    if "learning_rate" in values and not values["learning_rate"] > 0:
        raise bad("learning_rate", "must be greater than 0")
    for name, choices in settings.PARAMETER_CHOICES.items():
        if name in values and values[name] not in choices:
            raise bad(name, f"must be one of {', '.join(choices)}")
    if values.get("tune_algorithm", "") not in ("", *ALGORITHMS):
        raise bad("tune_algorithm", f"must be '' (the search space's) or one of {', '.join(ALGORITHMS)}")
    for name in URIS + OPTIONAL_URIS:
        if name not in values:
            continue
        if not values[name]:
            if name in URIS:
                raise bad(name, "is empty")
            continue
        try:
            storage.parse_uri(values[name])
        except UserError as exc:
            raise bad(name, f"is not a supported URI ({exc})") from None
