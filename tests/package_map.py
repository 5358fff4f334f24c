"""The package map in the README: a Mermaid graph of the packages and their import arrows, from the code.

    python -m tests.package_map            # print the map
    python -m tests.package_map --write    # rewrite the README's map (between the package-map markers)
    python -m tests.package_map --check    # exit 1 when the README's map is stale (tests/test_import_rules.py)

Modules are grouped by role: each subpackage of imgclf is one box, the top-level modules of
imgclf are "core", and components/ and pipelines/ are a box each. An arrow A --> B means some
module of A imports some module of B (grimp, the import graph library under import-linter).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
START, END = "<!-- package-map:start (python -m tests.package_map --write) -->", "<!-- package-map:end -->"
PACKAGES = ("imgclf", "components", "pipelines")


def _group(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "imgclf":
        return parts[0]
    if len(parts) == 2 and not (ROOT / "src" / "imgclf" / parts[1]).is_dir():
        return "core"
    return parts[1] if len(parts) > 1 else "core"


def package_graph() -> tuple[dict[str, list[str]], set[tuple[str, str]]]:
    """({group: [module short names]}, {(importer group, imported group)}) for the repository's code."""
    import grimp

    for path in (str(ROOT), str(ROOT / "src")):
        if path not in sys.path:
            sys.path.insert(0, path)
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    members: dict[str, list[str]] = {}
    for module in sorted(graph.modules):
        if module in PACKAGES or module.endswith("__init__"):
            continue
        group = _group(module)
        if module.split(".")[-1] != group:
            members.setdefault(group, []).append(module.split(".")[-1])
    edges = set()
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            a, b = _group(module), _group(imported)
            if a != b and imported.split(".")[0] in PACKAGES:
                edges.add((a, b))
    return members, edges


def mermaid() -> str:
    members, edges = package_graph()
    order = ["pipelines", "components", "serving", "katib", "kfp_client", "deploy", "steps", "reports", "model", "data", "core"]
    groups = sorted(set(members) | {g for e in edges for g in e}, key=lambda g: (order.index(g) if g in order else 99, g))
    lines = ["```mermaid", "flowchart TD"]
    for g in groups:
        title = g if g in ("components", "pipelines") else ("imgclf (core)" if g == "core" else f"imgclf.{g}")
        names = ", ".join(sorted(set(members.get(g, []))))
        lines.append(f'  {g}["<b>{title}</b><br/>{names}"]')
    for a, b in sorted(edges, key=lambda e: (groups.index(e[0]), groups.index(e[1]))):
        lines.append(f"  {a} --> {b}")
    lines.append("```")
    return "\n".join(lines)


def readme_with_map(text: str, block: str) -> str:
    if START not in text or END not in text:
        raise SystemExit(f"error: {README}: no package-map markers ({START} ... {END})")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{block}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.package_map", description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite the map in README.md")
    mode.add_argument("--check", action="store_true", help="exit 1 when README.md's map is stale")
    args = parser.parse_args(argv)
    block = mermaid()
    if not (args.write or args.check):
        print(block)
        return 0
    text = README.read_text()
    fresh = readme_with_map(text, block)
    if args.check:
        if fresh != text:
            print(f"error: {README}: the package map is stale; run: python -m tests.package_map --write", file=sys.stderr)
            return 1
        return 0
    README.write_text(fresh)
    print(f"wrote the package map into {README}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
