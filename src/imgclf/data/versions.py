"""The TF Serving model layout: `<base>/<model name>/<integer version>/saved_model.pb`.

Helpers shared by evaluate (find the currently pushed model), push (pick the
next version) and the local server (serve the latest). Works for local paths
gs:// and s3:// URIs. A version directory counts as *servable* only once its
saved_model.pb exists; push writes that file last, so a half-copied version
is never servable. A version number is *taken* once it is claimed (a record
`<base>/<model>/.claims/<version>.json`, created only if absent and never
deleted) or once a numeric directory of that name exists, servable or not.
TF Serving and KServe ignore `.claims/`: it is not a numeric directory.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from imgclf.data import storage

SAVED_MODEL_PB = "saved_model.pb"
CLAIMS_DIR = ".claims"


def model_base(push_base: str, model_name: str) -> storage.Location:
    if not model_name or "/" in model_name or model_name.startswith("."):
        from imgclf.errors import UserError

        raise UserError(f"model name {model_name!r}: must be a non-empty name without '/' or a leading dot")
    return storage.parse_uri(push_base).child(model_name)


def taken_versions(base: storage.Location) -> list[int]:
    """All version numbers under a model base (sorted): numeric directories and claims, complete or not."""
    taken = {int(name) for name in storage.list_children(base.uri()) if name.isdigit()}
    claims = storage.list_children(base.child(CLAIMS_DIR).uri())
    taken |= {int(name[:-5]) for name in claims if name.endswith(".json") and name[:-5].isdigit()}
    return sorted(taken)


def claim_uri(base: storage.Location, version: int) -> str:
    return base.child(CLAIMS_DIR, f"{version}.json").uri()


def version_record(base: storage.Location, version: int) -> dict:
    """The claim record push wrote for a version ({"model_sha256", ...}); {} when absent or unreadable."""
    from imgclf.errors import UserError

    try:
        record = json.loads(storage.read_bytes(claim_uri(base, version)))
    except (UserError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def servable_versions(base: storage.Location) -> list[int]:
    """Versions under a model base whose saved_model.pb exists (sorted ascending)."""
    return [v for v in taken_versions(base)
            if SAVED_MODEL_PB in storage.list_children(base.child(str(v)).uri())]


def latest_servable(base: storage.Location) -> tuple[int, str] | None:
    """(version, uri) of the newest servable version under a model base, or None when nothing is pushed."""
    found = servable_versions(base)
    if not found:
        return None
    return found[-1], base.child(str(found[-1])).uri()


def saved_model_digest(saved_model_dir: str | Path) -> str:
    """sha256 over a local SavedModel directory's files (relative paths and contents, in sorted order).

    Evaluate records it in blessing.json and push checks it, so a blessing only
    ever pushes the model it was written for.
    """
    root = Path(saved_model_dir)
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()
