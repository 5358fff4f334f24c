"""The package map holds: import-linter's layers contract (pyproject.toml) is kept, and the README's map is current."""

from __future__ import annotations

import os
from pathlib import Path

from tests import package_map

ROOT = Path(__file__).resolve().parents[1]


def test_the_import_rule_holds(capsys):
    """Edges (serving, katib, kfp_client, deploy) never import each other; steps never import an edge; core
    imports nothing above it. On failure, import-linter's report names the offending import and line."""
    from importlinter.cli import lint_imports

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        code = lint_imports(config_filename="pyproject.toml", no_cache=True, no_logo=True)
    finally:
        os.chdir(cwd)
    assert code == 0, capsys.readouterr().out


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
