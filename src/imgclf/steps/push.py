"""Push: copy a blessed model's SavedModel to `<base>/<model>/<next integer version>/`.

Only a model whose blessing says blessed=true is pushed. The new version never
appears half-written:
  local   the SavedModel is copied to `<base>/<model>/.tmp-<id>/` and renamed
          to `<version>` in one rename (retrying with the next number if another
          push took it meanwhile);
  gs://   files are uploaded to `<base>/<model>/.staging-<id>/`, a version number
          is claimed with a create-if-absent `<version>/.claim`, the files are copied
          server-side into `<version>/` with saved_model.pb LAST, and the claim and
          staging prefix deleted. TF Serving and KServe ignore non-numeric directories,
          and a version without saved_model.pb is not servable, so an interrupted
          push is never loaded; the next push skips the taken number.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path

from imgclf import settings, storage, versions
from imgclf.errors import UserError, run_cli

MAX_RENAME_RETRIES = 20
CLAIM_MARKER = ".claim"


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


def _push_local(src: Path, base: storage.Location) -> int:
    root = Path(base.path)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{uuid.uuid4().hex}"
    shutil.copytree(src, tmp)
    try:
        for _ in range(MAX_RENAME_RETRIES):
            version = max(versions.taken_versions(base), default=0) + 1
            try:
                os.rename(tmp, root / str(version))  # atomic; fails if the target exists
                return version
            except OSError:
                continue
        raise UserError(f"{root}: could not claim a new version after {MAX_RENAME_RETRIES} tries")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _claim_gcs_version(bucket, base: storage.Location) -> int:
    """Reserve the next version number by creating `<version>/.claim` only if it does not exist.

    The create carries ifGenerationMatch=0, so of two pushes racing for one number
    only one wins; the other moves on. (gcp-storage-emulator ignores this
    precondition; real GCS enforces it.) A claimed number counts as taken.
    """
    from google.api_core import exceptions as gexc

    for _ in range(MAX_RENAME_RETRIES):
        version = max(versions.taken_versions(base), default=0) + 1
        try:
            bucket.blob(base.child(str(version), CLAIM_MARKER).path).upload_from_string(b"", if_generation_match=0)
            return version
        except gexc.PreconditionFailed:
            continue
    raise UserError(f"{base.uri()}: could not claim a new version after {MAX_RENAME_RETRIES} tries")


def _push_gcs(src: Path, base: storage.Location) -> int:
    client = storage.gcs_client()
    bucket = client.bucket(base.bucket)
    staging = base.child(f".staging-{uuid.uuid4().hex}")
    files = sorted(p for p in src.rglob("*") if p.is_file())
    # saved_model.pb goes last everywhere, so its presence means "complete".
    files.sort(key=lambda p: p.relative_to(src).as_posix() == versions.SAVED_MODEL_PB)
    try:
        for path in files:
            bucket.blob(staging.child(path.relative_to(src).as_posix()).path).upload_from_filename(str(path))
        version = _claim_gcs_version(bucket, base)
        final = base.child(str(version))
        for path in files:
            rel = path.relative_to(src).as_posix()
            bucket.copy_blob(bucket.blob(staging.child(rel).path), bucket, final.child(rel).path)
        bucket.blob(final.child(CLAIM_MARKER).path).delete()
        return version
    finally:
        for blob in client.list_blobs(base.bucket, prefix=staging.path + "/"):
            blob.delete()


def push(model_dir: str, blessing_path: str, push_base: str = settings.DEFAULT_PUSH_BASE,
         model_name: str = settings.MODEL_NAME) -> dict:
    """Push a blessed model; returns {"version", "uri", "pushed_at"}. UserError when not blessed."""
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
    version = _push_gcs(src, base) if base.is_gcs else _push_local(src, base)
    return {"version": version, "uri": base.child(str(version)).uri(),
            "pushed_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imgclf-push", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model directory written by imgclf-train")
    parser.add_argument("--blessing", required=True, help="blessing.json written by imgclf-evaluate")
    parser.add_argument("--push-base", default=settings.DEFAULT_PUSH_BASE, help="local directory or gs://bucket/prefix")
    parser.add_argument("--model-name", default=settings.MODEL_NAME)
    parser.add_argument("--rollout-inferenceservice", metavar="[NAMESPACE/]NAME",
                        help="then patch this KServe InferenceService so it serves the new version (kserve_rollout)")
    args = parser.parse_args(argv)
    result = push(args.model, args.blessing, args.push_base, args.model_name)
    print(f"pushed version {result['version']} to {result['uri']}")
    if args.rollout_inferenceservice:
        from imgclf import kserve_rollout

        print(kserve_rollout.roll_after_push(args.rollout_inferenceservice, result))
    return 0


def cli() -> None:
    raise SystemExit(run_cli(main))


if __name__ == "__main__":
    cli()
