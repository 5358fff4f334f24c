"""The rules Katib's validating admission webhook applies to an Experiment, checked before we write one.

Taken from Katib's experiment validator (pkg/webhook/v1beta1/experiment/validator): counts,
objective, algorithm name, parameter types with string feasible spaces, trial template
(primary container, success/failure conditions, trial parameters declared <-> used), plus
two rules of ours that Katib does not enforce but its users trip over: an exec-form trial
command (the metrics collector must find the process) and the Istio sidecar annotation.
"""

from __future__ import annotations

import re

from imgclf.errors import UserError

KATIB_ALGORITHMS = ("random", "grid", "tpe", "multivariate-tpe", "cmaes", "sobol", "bayesianoptimization",
                    "hyperband", "pbt", "enas", "darts")
TRIAL_PARAMETER_RE = re.compile(r"\$\{trialParameters\.([^}]+)\}")


def validate_experiment(exp: dict) -> None:
    """The rules Katib's validating webhook enforces that a generator can get wrong; UserError on the first."""
    name = exp["metadata"]["name"]
    where = f"Experiment {name}"
    if not re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name):
        raise UserError(f"{where}: metadata.name must be lower-case alphanumerics and '-', starting with a letter")
    spec = exp["spec"]
    max_trials, parallel, failed = spec["maxTrialCount"], spec["parallelTrialCount"], spec["maxFailedTrialCount"]
    if not (max_trials > 0 and parallel > 0 and failed >= 0):
        raise UserError(f"{where}: maxTrialCount and parallelTrialCount must be > 0, maxFailedTrialCount >= 0")
    if parallel > max_trials:
        raise UserError(f"{where}: parallelTrialCount {parallel} > maxTrialCount {max_trials}")
    if failed > max_trials:
        raise UserError(f"{where}: maxFailedTrialCount {failed} > maxTrialCount {max_trials}")
    objective = spec["objective"]
    if objective["type"] not in ("minimize", "maximize"):
        raise UserError(f"{where}: objective.type {objective['type']!r} is not minimize or maximize")
    if objective["objectiveMetricName"] in objective.get("additionalMetricNames", []):
        raise UserError(f"{where}: additionalMetricNames must not contain the objective metric")
    if spec["algorithm"]["algorithmName"] not in KATIB_ALGORITHMS:
        raise UserError(f"{where}: algorithm {spec['algorithm']['algorithmName']!r} is not a Katib algorithm")
    for s in spec["algorithm"].get("algorithmSettings", []):
        if not isinstance(s["value"], str):
            raise UserError(f"{where}: algorithmSettings {s['name']}: value must be a string")
    names = set()
    for p in spec["parameters"]:
        pwhere = f"{where}: parameter {p['name']}"
        names.add(p["name"])
        ptype, feasible = p["parameterType"], p["feasibleSpace"]
        if ptype not in ("int", "double", "discrete", "categorical"):
            raise UserError(f"{pwhere}: parameterType {ptype!r} is not int, double, discrete or categorical")
        for key, value in feasible.items():
            values = value if key == "list" else [value]
            if not values or not all(isinstance(v, str) for v in values):
                raise UserError(f"{pwhere}: feasibleSpace.{key} must hold strings, got {value!r}")
        if ptype in ("int", "double") and ("list" in feasible or not {"min", "max"} <= set(feasible)):
            raise UserError(f"{pwhere}: {ptype} needs feasibleSpace min and max and no list")
        if ptype in ("discrete", "categorical") and ({"min", "max", "step"} & set(feasible) or not feasible.get("list")):
            raise UserError(f"{pwhere}: {ptype} needs a feasibleSpace list and no min/max/step")
        if feasible.get("distribution", "uniform") not in ("uniform", "logUniform", "normal", "logNormal"):
            raise UserError(f"{pwhere}: feasibleSpace.distribution {feasible['distribution']!r} is not supported")

    template = spec["trialTemplate"]
    trial_spec = template["trialSpec"]
    if trial_spec.get("metadata", {}).get("name") or trial_spec.get("metadata", {}).get("namespace"):
        raise UserError(f"{where}: trialSpec must not set metadata.name or metadata.namespace")
    pod = trial_spec["spec"]["template"]["spec"]
    containers = [c["name"] for c in pod["containers"]]
    if template["primaryContainerName"] not in containers:
        raise UserError(f"{where}: primaryContainerName {template['primaryContainerName']!r} names no container "
                        f"(containers: {', '.join(containers)})")
    if not template.get("successCondition") or not template.get("failureCondition"):
        raise UserError(f"{where}: trialTemplate needs successCondition and failureCondition")
    declared = [tp["name"] for tp in template["trialParameters"]]
    if len(set(declared)) != len(declared):
        raise UserError(f"{where}: duplicate trialParameters names in {declared}")
    for tp in template["trialParameters"]:
        if tp["reference"] not in names:
            raise UserError(f"{where}: trialParameter {tp['name']} references {tp['reference']!r}, "
                            f"not in spec.parameters")
    used = set(TRIAL_PARAMETER_RE.findall(repr(trial_spec)))
    if set(declared) - used:
        raise UserError(f"{where}: trialParameters {', '.join(sorted(set(declared) - used))} not used in trialSpec")
    if used - set(declared):
        raise UserError(f"{where}: trialSpec uses undeclared ${{trialParameters.{sorted(used - set(declared))[0]}}}")
    primary = next(c for c in pod["containers"] if c["name"] == template["primaryContainerName"])
    if not primary.get("command") or primary["command"][0] in ("sh", "bash", "/bin/sh", "/bin/bash"):
        raise UserError(f"{where}: the primary container needs an exec-form command (no shell wrapper) so the "
                        f"metrics collector finds the trainer process")
    meta = trial_spec["spec"]["template"].get("metadata", {})
    for kind in ("labels", "annotations"):  # label: Katib >= 0.19 and current Istio; annotation: older Istio
        if meta.get(kind, {}).get("sidecar.istio.io/inject") != "false":
            raise UserError(f"{where}: trial pods need {kind[:-1]} sidecar.istio.io/inject: \"false\" "
                            f"(trials hang otherwise)")
