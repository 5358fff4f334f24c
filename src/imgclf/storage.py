"""Reading and writing local paths and gs:// URIs through one small interface.

Local paths (plain or file://) and Google Cloud Storage (gs://bucket/prefix,
through google-cloud-storage) are supported; any other scheme is a UserError.
For tests and offline work, set STORAGE_EMULATOR_HOST (e.g. gcp-storage-emulator):
the client then talks to the emulator with anonymous credentials.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from imgclf.errors import UserError

SUPPORTED_SCHEMES = ("local path", "file://", "gs://")


@dataclass(frozen=True)
class Location:
    """A parsed URI: scheme 'file' (path is absolute local) or 'gs' (bucket + key prefix)."""

    scheme: str
    path: str
    bucket: str = ""

    @property
    def is_gcs(self) -> bool:
        return self.scheme == "gs"

    def uri(self) -> str:
        return f"gs://{self.bucket}/{self.path}".rstrip("/") if self.is_gcs else self.path

    def child(self, *parts: str) -> "Location":
        if self.is_gcs:
            joined = "/".join(p.strip("/") for p in (self.path, *parts) if p.strip("/"))
            return Location("gs", joined, self.bucket)
        return Location("file", str(Path(self.path, *parts)))


def parse_uri(uri: str) -> Location:
    """Parse a local path, file:// or gs:// URI; raise UserError for anything else."""
    if not uri:
        raise UserError("empty URI: give a local path or gs://bucket/prefix")
    if uri.startswith("gs://"):
        rest = uri[len("gs://"):]
        bucket, _, path = rest.partition("/")
        if not bucket:
            raise UserError(f"{uri}: gs:// URI has no bucket name")
        return Location("gs", path.strip("/"), bucket)
    if uri.startswith("file://"):
        return Location("file", str(Path(uri[len("file://"):]).resolve()))
    if "://" in uri:
        scheme = uri.split("://", 1)[0]
        raise UserError(f"{uri}: unknown URI scheme '{scheme}://' (supported: {', '.join(SUPPORTED_SCHEMES)})")
    return Location("file", str(Path(uri).resolve()))


def gcs_client():
    """A google-cloud-storage client; anonymous when STORAGE_EMULATOR_HOST points at an emulator."""
    from google.cloud import storage

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(project=os.environ.get("GOOGLE_CLOUD_PROJECT", "test"),
                              credentials=AnonymousCredentials())
    return storage.Client()


def read_bytes(uri: str) -> bytes:
    """Read a whole file; UserError naming the URI when it does not exist."""
    loc = parse_uri(uri)
    if loc.is_gcs:
        from google.api_core import exceptions as gexc

        try:
            return gcs_client().bucket(loc.bucket).blob(loc.path).download_as_bytes()
        except gexc.NotFound:
            raise UserError(f"{uri}: no such object") from None
    try:
        return Path(loc.path).read_bytes()
    except FileNotFoundError:
        raise UserError(f"{uri}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{uri}: is a directory, expected a file") from None


def list_children(uri: str) -> list[str]:
    """Names directly under a directory / prefix (files and sub-directories), sorted."""
    loc = parse_uri(uri)
    if loc.is_gcs:
        prefix = f"{loc.path}/" if loc.path else ""
        blobs = gcs_client().list_blobs(loc.bucket, prefix=prefix, delimiter="/")
        names = [b.name[len(prefix):] for b in blobs]
        names += [p[len(prefix):].rstrip("/") for p in blobs.prefixes]
        return sorted(n for n in names if n)
    path = Path(loc.path)
    if not path.is_dir():
        return []
    return sorted(p.name for p in path.iterdir())


def exists(uri: str) -> bool:
    loc = parse_uri(uri)
    if loc.is_gcs:
        client = gcs_client()
        if client.bucket(loc.bucket).blob(loc.path).exists():
            return True
        return any(True for _ in client.list_blobs(loc.bucket, prefix=loc.path.rstrip("/") + "/", max_results=1))
    return Path(loc.path).exists()


def download_dir(uri: str, local_dir: str | Path) -> Path:
    """Copy a directory tree (local or gs://) into local_dir; returns local_dir."""
    loc = parse_uri(uri)
    local_dir = Path(local_dir)
    if not loc.is_gcs:
        if not Path(loc.path).is_dir():
            raise UserError(f"{uri}: no such directory")
        shutil.copytree(loc.path, local_dir, dirs_exist_ok=True)
        return local_dir
    prefix = loc.path.rstrip("/") + "/"
    found = False
    for blob in gcs_client().list_blobs(loc.bucket, prefix=prefix):
        rel = blob.name[len(prefix):]
        if not rel or rel.endswith("/"):
            continue
        found = True
        target = local_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        blob.download_to_filename(str(target))
    if not found:
        raise UserError(f"{uri}: no such directory (no objects under this prefix)")
    return local_dir


def local_copy(uri: str) -> tuple[Path, tempfile.TemporaryDirectory | None]:
    """A local path for a directory URI: itself when local, else a downloaded temp copy.

    Returns (path, tmp) where tmp must be cleaned up by the caller (None when local).
    """
    loc = parse_uri(uri)
    if not loc.is_gcs:
        if not Path(loc.path).is_dir():
            raise UserError(f"{uri}: no such directory")
        return Path(loc.path), None
    tmp = tempfile.TemporaryDirectory(prefix="imgclf-dl-")
    return download_dir(uri, tmp.name), tmp


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a local text file via a temp file and rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_new_output(out: str | Path) -> Path:
    """UserError unless `out` is absent or an empty directory; returns it as a Path."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out}: output already exists; choose a new path or remove it")
    return out


@contextmanager
def atomic_directory(out: str | Path):
    """Yield a temp directory beside `out`; when the block succeeds, rename it to `out`.

    `out` must not exist or be an empty directory (KFP pre-creates some artifact
    directories); otherwise UserError. On any failure the temp directory is removed,
    so readers see either nothing or the whole directory.
    """
    out = check_new_output(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
        if out.exists():
            out.rmdir()
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
