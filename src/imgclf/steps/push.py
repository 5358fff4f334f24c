"""Push: copy a blessed model's SavedModel to `<base>/<model>/<next integer version>/`.

Only a model whose blessing says blessed=true, written for this very model
(model_sha256), is pushed, and only while the newest pushed version is still
the baseline that evaluate compared it with: if a newer version appeared since,
push refuses (evaluate again). Pushing the model that is already the newest
version (same digest) reports that version and creates nothing, so a retried
push task never duplicates a model.

A version number is claimed with the store's own create-if-absent of
`<base>/<model>/.claims/<version>.json` (O_EXCL-style hard link locally,
S3 `If-None-Match: *`, GCS `ifGenerationMatch=0`); claims are never deleted, so
a finished version can never be claimed again. Then:
  local      the files were copied to `<base>/<model>/.tmp-<id>/`, renamed to
             `<version>` in one rename;
  gs://, s3://  the files were uploaded to `<base>/<model>/.staging-<id>/` and are
             copied server-side into `<version>/` with saved_model.pb LAST, then the
             staging prefix is deleted.
A reader counts a version only once saved_model.pb exists, so a push killed at
any point leaves nothing servable; its claimed number stays taken and the next
push takes the one after. `model_card.md` beside the blessing file, when there
is one, is copied into the version before saved_model.pb.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path

from imgclf import settings
from imgclf.data import storage, versions
from imgclf.errors import UserError, run_cli

MAX_CLAIM_TRIES = 20
MODEL_CARD = "model_card.md"


def read_blessing(path: str | Path) -> dict:
    try:
        blessing = json.loads(Path(path).read_text())
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise UserError(f"{path}: no such blessing file") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: invalid JSON ({exc})") from None
    if not isinstance(blessing, dict):
        raise UserError(f"{path}: expected a JSON object with a 'blessed' field")
    if not isinstance(blessing.get("blessed"), bool):
        raise UserError(f"{path}: field 'blessed' must be true or false")
    return blessing


def _saved_model_dir(model_dir: str | Path) -> Path:
    model_dir = Path(model_dir)
    for candidate in (model_dir / "saved_model", model_dir):
        if (candidate / versions.SAVED_MODEL_PB).is_file():
            return candidate
    raise UserError(f"{model_dir}: no SavedModel (expected saved_model/{versions.SAVED_MODEL_PB})")


def _files_to_push(src: Path, blessing_path: str | Path) -> list[tuple[Path, str]]:
    """(local file, relative name) pairs: the SavedModel, the model card if any, saved_model.pb last."""
    files = [(p, p.relative_to(src).as_posix()) for p in sorted(src.rglob("*")) if p.is_file()]
    card = Path(blessing_path).parent / MODEL_CARD
    if card.is_file() and not any(rel == MODEL_CARD for _, rel in files):
        files.append((card, MODEL_CARD))
    files.sort(key=lambda item: item[1] == versions.SAVED_MODEL_PB)  # stable: only moves saved_model.pb
    return files


def _claim_version(base: storage.Location, record: dict) -> int:
    """The next free version number, claimed by a create-if-absent of its record (never released).

    Numbers lost to a concurrent pusher's claim are appended to record["lost_claims"]."""
    for _ in range(MAX_CLAIM_TRIES):
        version = max(versions.taken_versions(base), default=0) + 1
        data = json.dumps({**record, "version": version}, indent=2).encode()
        if storage.create_exclusive(versions.claim_uri(base, version), data):
            return version
        record.setdefault("lost_claims", []).append(version)
    raise UserError(f"{base.uri()}: could not claim a new version after {MAX_CLAIM_TRIES} tries")


def _push_local(files: list[tuple[Path, str]], base: storage.Location, record: dict) -> int:
    root = Path(base.path)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{uuid.uuid4().hex}"
    try:
        for path, rel in files:
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, tmp / rel)
        for _ in range(MAX_CLAIM_TRIES):
            version = _claim_version(base, record)
            try:
                os.rename(tmp, root / str(version))  # atomic; a directory made by hand keeps its number
                return version
            except OSError:
                continue
        raise UserError(f"{root}: could not place a new version after {MAX_CLAIM_TRIES} tries")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _push_object_store(files: list[tuple[Path, str]], base: storage.Location, record: dict) -> int:
    staging = base.child(f".staging-{uuid.uuid4().hex}")
    try:
        for path, rel in files:
            storage.upload_file(path, staging.child(rel).uri())
        version = _claim_version(base, record)
        final = base.child(str(version))
        for _, rel in files:  # saved_model.pb last: until it lands, no reader counts this version
            storage.copy_object(staging.child(rel).uri(), final.child(rel).uri())
        return version
    finally:
        storage.remove_tree(staging.uri())


def _check_newest(base: storage.Location, blessing: dict, blessing_path: str) -> dict | None:
    """The newest version when it already holds this model (idempotent push); UserError when a version
    newer than the blessing's baseline was pushed since evaluate; None when pushing may go ahead."""
    servable = versions.servable_versions(base)
    if not servable:
        return None
    newest = servable[-1]
    record = versions.version_record(base, newest)
    if record.get("model_sha256") == blessing["model_sha256"]:
        return {"version": newest, "uri": base.child(str(newest)).uri(), "pushed_at": record.get("pushed_at"),
                "created": False}
    baseline = (blessing.get("baseline") or {}).get("version")
    if baseline is None or newest > baseline:
        against = f"version {baseline}" if baseline is not None else "no pushed model"
        raise UserError(f"{base.uri()}: version {newest} was pushed after {blessing_path} compared this model "
                        f"with {against}; evaluate again before pushing")
    return None


def push(model_dir: str, blessing_path: str, push_base: str = settings.DEFAULT_PUSH_BASE,
         model_name: str = settings.MODEL_NAME) -> dict:
    """Push a blessed model; returns {"version", "uri", "pushed_at", "created"}.

    created is False when the newest version already holds this model (nothing is written).
    UserError when not blessed, blessed for another model, or outdated by a newer version.
    """
    blessing = read_blessing(blessing_path)
    if not blessing["blessed"]:
        reasons = "; ".join(blessing.get("reasons", [])) or "no reason recorded"
        raise UserError(f"{blessing_path}: model is not blessed ({reasons}); refusing to push")
    src = _saved_model_dir(model_dir)
    if "model_sha256" not in blessing:
        raise UserError(f"{blessing_path}: no model_sha256 (written by an older imgclf-evaluate); evaluate again")
    if blessing["model_sha256"] != versions.saved_model_digest(src):
        raise UserError(f"{blessing_path}: this blessing was written for another model than {model_dir} "
                        "(model_sha256 differs); evaluate this model first")
    base = versions.model_base(push_base, model_name)
    existing = _check_newest(base, blessing, blessing_path)
    if existing is not None:
        return existing
    pushed_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    record = {"model_sha256": blessing["model_sha256"], "pushed_at": pushed_at,
              "baseline_version": (blessing.get("baseline") or {}).get("version")}
    files = _files_to_push(src, blessing_path)
    with storage.store_errors(base):
        version = (_push_object_store if base.is_remote else _push_local)(files, base, record)
    result = {"version": version, "uri": base.child(str(version)).uri(), "pushed_at": pushed_at, "created": True}
    if record.get("lost_claims"):
        result["lost_claims"] = record["lost_claims"]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imgclf-push", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model directory written by imgclf-train")
    parser.add_argument("--blessing", required=True, help="blessing.json written by imgclf-evaluate")
    parser.add_argument("--push-base", default=settings.DEFAULT_PUSH_BASE, help="local directory, gs://bucket/prefix or s3://bucket/prefix")
    parser.add_argument("--model-name", default=settings.MODEL_NAME)
    parser.add_argument("--rollout-inferenceservice", metavar="[NAMESPACE/]NAME",
                        help="then patch this KServe InferenceService so it serves the new version (kserve_rollout)")
    args = parser.parse_args(argv)
    result = push(args.model, args.blessing, args.push_base, args.model_name)
    if result["created"]:
        lost = result.get("lost_claims")
        note = f" (version {', '.join(map(str, lost))} claimed first by a concurrent push)" if lost else ""
        print(f"pushed version {result['version']} to {result['uri']}{note}")
    else:
        print(f"version {result['version']} at {result['uri']} already holds this model; nothing pushed")
    if args.rollout_inferenceservice:
        from imgclf.steps import rollout as kserve_rollout

        print(kserve_rollout.roll_after_push(args.rollout_inferenceservice, result))
    return 0


def cli() -> None:
    raise SystemExit(run_cli(main))


if __name__ == "__main__":
    cli()
