"""Katib staging step: copy an ingested dataset onto the shared data volume that Katib trials read.

The pipeline's katib_stage task is the only one that mounts the data PVC (read-write); it ends before
the Experiment starts, so trials on other nodes can mount the claim read-only without a Multi-Attach.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from imgclf import settings
from imgclf.data import datasets, storage
from imgclf.errors import UserError, run_cli


def stage_dataset(dataset_dir: str, mount: str = settings.KATIB_DATA_MOUNT) -> str:
    """Copy an ingested dataset onto the shared data volume (mounted at `mount`) where trials can read it.

    The copy lands in <mount>/datasets/<train split sha256[:16]>: content-addressed, so a second run with
    the same data reuses it, and it appears atomically (copied aside, then renamed). Returns its path.
    """
    meta = datasets.read_metadata(dataset_dir)
    root = Path(mount) / "datasets"
    target = root / meta["splits"]["train"]["sha256"][:16]
    if (target / datasets.METADATA_FILE).exists():
        return str(target)
    if not Path(mount).is_dir():
        raise UserError(f"{mount}: data volume not mounted (mount the data PVC on the katib_tune step)")
    try:
        with storage.atomic_directory(target) as tmp:
            shutil.copytree(dataset_dir, tmp, dirs_exist_ok=True)
    except (OSError, UserError):
        if not (target / datasets.METADATA_FILE).exists():  # not a concurrent run that won the rename
            raise
    return str(target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imgclf.steps.katib_stage", description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="dataset directory written by imgclf-ingest")
    parser.add_argument("--mount", default=settings.KATIB_DATA_MOUNT, help="where the data volume is mounted")
    args = parser.parse_args(argv)
    print(stage_dataset(args.dataset, args.mount))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
