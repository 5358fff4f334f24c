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
