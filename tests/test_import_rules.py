"""The package map holds: import-linter's layers contract (pyproject.toml) is kept, and the README's map is current."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests import package_map

ROOT = Path(__file__).resolve().parents[1]


def test_the_import_rule_holds():
    """Edges (serving, katib, kfp_client, deploy) never import each other; steps never import an edge; core
    imports nothing above it. On failure, import-linter's report names the offending import and line.
    (A subprocess: import-linter prints through rich, whose console may hold a stream pytest has closed.)"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([str(Path(sys.executable).with_name("lint-imports")), "--no-cache"], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 kept, 0 broken" in done.stdout


def test_the_readme_package_map_is_current():
    text = package_map.README.read_text()
    assert package_map.readme_with_map(text, package_map.mermaid()) == text, (
        "README's package map is stale: run python -m tests.package_map --write")


def test_the_map_draws_every_subpackage_and_no_arrow_up_the_layers():
    members, edges = package_map.package_graph()
    packages = {p.name for p in (ROOT / "src" / "imgclf").iterdir() if (p / "__init__.py").is_file()}
    assert packages <= set(members)
    for edge in ("serving", "katib", "kfp_client", "deploy"):
        assert not {(edge, other) for other in ("serving", "katib", "kfp_client", "deploy") if other != edge} & edges
        assert (edge, "components") not in edges and ("steps", edge) not in edges
    assert "data" in members and "storage" in members["data"]
