"""One storage layer for local paths, gs:// and s3:// URIs (fsspec with gcsfs and s3fs).

Every URI the pipeline takes (data, schema, reference statistics, push base)
goes through these functions, so listing, reading and the push share one code
path whatever the store:
  local   a plain path or file://
  gs://   Google Cloud Storage (gcsfs); application default credentials, or
          anonymous against an emulator when STORAGE_EMULATOR_HOST is set
  s3://   AWS S3 or any S3-compatible store such as MinIO (s3fs); endpoint and
          credentials from the standard AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
          AWS_SECRET_ACCESS_KEY (and AWS_REGION) variables
Any other scheme is a UserError listing these. Store errors (missing bucket,
permission denied, no credentials) become one-line UserErrors naming the URI.
`create_exclusive` is the store's own conditional create (O_EXCL locally,
S3 If-None-Match: *, GCS ifGenerationMatch=0): push claims version numbers with it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from imgclf.errors import UserError

SUPPORTED_SCHEMES = ("local path", "file://", "gs://", "s3://")
REMOTE_SCHEMES = ("gs", "s3")


@dataclass(frozen=True)
class Location:
    """A parsed URI: scheme 'file' (path is absolute local), or 'gs' / 's3' (bucket + key prefix)."""

    scheme: str
    path: str
    bucket: str = ""

    @property
    def is_gcs(self) -> bool:
        return self.scheme == "gs"

    @property
    def is_s3(self) -> bool:
        return self.scheme == "s3"

    @property
    def is_remote(self) -> bool:
        return self.scheme in REMOTE_SCHEMES

    def uri(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.path}".rstrip("/") if self.is_remote else self.path

    def fs_path(self) -> str:
        """The path as fsspec names it: 'bucket/key' for object stores, the absolute path locally."""
        return f"{self.bucket}/{self.path}".rstrip("/") if self.is_remote else self.path

    def child(self, *parts: str) -> "Location":
        if self.is_remote:
            joined = "/".join(p.strip("/") for p in (self.path, *parts) if p.strip("/"))
            return Location(self.scheme, joined, self.bucket)
        return Location("file", str(Path(self.path, *parts)))


def parse_uri(uri: str) -> Location:
    """Parse a local path, file://, gs:// or s3:// URI; raise UserError for anything else."""
    if not uri:
        raise UserError("empty URI: give a local path, gs://bucket/prefix or s3://bucket/prefix")
    for scheme in REMOTE_SCHEMES:
        if uri.startswith(f"{scheme}://"):
            bucket, _, path = uri[len(scheme) + 3:].partition("/")
            if not bucket:
                raise UserError(f"{uri}: {scheme}:// URI has no bucket name")
            return Location(scheme, path.strip("/"), bucket)
    if uri.startswith("file://"):
        return Location("file", str(Path(uri[len("file://"):]).resolve()))
    if "://" in uri:
        scheme = uri.split("://", 1)[0]
        raise UserError(f"{uri}: unknown URI scheme '{scheme}://' (supported: {', '.join(SUPPORTED_SCHEMES)})")
    return Location("file", str(Path(uri).resolve()))


def filesystem(scheme: str):
    """The fsspec filesystem for a scheme ('file', 'gs', 's3'), with listing caches off (versions change)."""
    import fsspec

    if scheme == "gs":
        # gcsfs' core class: its default "extended" class first asks a gRPC control API for the
        # bucket type (hierarchical/zonal), which an emulator cannot answer (60 s timeout).
        from gcsfs.core import GCSFileSystem

        emulator = os.environ.get("STORAGE_EMULATOR_HOST")
        if emulator:
            return GCSFileSystem(token="anon", endpoint_url=emulator, use_listings_cache=False,
                                 project=os.environ.get("GOOGLE_CLOUD_PROJECT", "test"))
        return GCSFileSystem(use_listings_cache=False)
    if scheme == "s3":
        # botocore reads AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_REGION itself; the endpoint is
        # passed explicitly so the filesystem instance cache never mixes two endpoints.
        client = {"endpoint_url": os.environ["AWS_ENDPOINT_URL"]} if os.environ.get("AWS_ENDPOINT_URL") else {}
        return fsspec.filesystem("s3", client_kwargs=client, use_listings_cache=False)
    return fsspec.filesystem("file")


def gcs_client():
    """A google-cloud-storage client; anonymous when STORAGE_EMULATOR_HOST points at an emulator (tests)."""
    from google.cloud import storage

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(project=os.environ.get("GOOGLE_CLOUD_PROJECT", "test"),
                              credentials=AnonymousCredentials())
    return storage.Client()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _is_store_error(exc: BaseException) -> bool:
    """Credential, endpoint or API errors from the cloud clients (not our bugs)."""
    module = type(exc).__module__
    return module.startswith(("botocore", "aiobotocore", "google.auth", "google.api_core", "aiohttp", "gcsfs",
                              "s3fs"))


@contextmanager
def store_errors(loc: Location, missing: str = "no such file or object"):
    """Turn a store's errors into one-line UserErrors naming the URI (missing bucket, denied, offline...)."""
    try:
        yield
    except UserError:
        raise
    except FileExistsError:
        raise
    except FileNotFoundError:
        try:
            bucket_missing = loc.is_remote and not _bucket_exists(loc)
        except PermissionError as exc:
            raise UserError(f"{loc.uri()}: permission denied ({_first_line(exc)})") from None
        if bucket_missing:
            raise UserError(f"{loc.uri()}: no such bucket '{loc.bucket}'") from None
        raise UserError(f"{loc.uri()}: {missing}") from None
    except PermissionError as exc:
        raise UserError(f"{loc.uri()}: permission denied ({_first_line(exc)})") from None
    except IsADirectoryError:
        raise UserError(f"{loc.uri()}: is a directory, expected a file") from None
    except OSError as exc:
        raise UserError(f"{loc.uri()}: {exc.strerror or _first_line(exc)}") from None
    except Exception as exc:
        if not _is_store_error(exc):
            raise
        raise UserError(f"{loc.uri()}: {type(exc).__name__}: {_first_line(exc)}") from None


def _bucket_exists(loc: Location) -> bool:
    """False only when the store says the bucket is missing; denied or offline errors propagate."""
    fs = filesystem(loc.scheme)
    try:
        fs.info(loc.bucket)
    except FileNotFoundError:
        return False
    return True


def read_bytes(uri: str) -> bytes:
    """Read a whole file; UserError naming the URI when it (or its bucket) does not exist."""
    loc = parse_uri(uri)
    with store_errors(loc, "no such file" if not loc.is_remote else "no such object"):
        return filesystem(loc.scheme).cat_file(loc.fs_path())


def list_children(uri: str) -> list[str]:
    """Names directly under a directory / prefix (files and sub-directories), sorted; [] when absent.

    UserError when the bucket itself is missing or listing is denied.
    """
    loc = parse_uri(uri)
    fs = filesystem(loc.scheme)
    with store_errors(loc):
        try:
            entries = fs.ls(loc.fs_path(), detail=False)
        except (FileNotFoundError, NotADirectoryError):
            if loc.is_remote and not _bucket_exists(loc):
                raise
            return []
    prefix = loc.fs_path().rstrip("/") + "/"
    names = {e.rstrip("/")[len(prefix):] for e in entries if e.rstrip("/").startswith(prefix)}
    return sorted(n for n in names if n and "/" not in n)


def exists(uri: str) -> bool:
    """True when a file or a non-empty prefix (directory) exists at uri."""
    loc = parse_uri(uri)
    with store_errors(loc):
        return bool(filesystem(loc.scheme).exists(loc.fs_path()))


def list_files(uri: str) -> list[str]:
    """Relative paths of every file under a directory / prefix (recursive, sorted)."""
    loc = parse_uri(uri)
    prefix = loc.fs_path().rstrip("/") + "/"
    with store_errors(loc):
        try:
            found = filesystem(loc.scheme).find(loc.fs_path())
        except FileNotFoundError:
            if loc.is_remote and not _bucket_exists(loc):
                raise
            return []
    return sorted(p[len(prefix):] for p in found if p.startswith(prefix) and not p.endswith("/"))


def download_dir(uri: str, local_dir: str | Path) -> Path:
    """Copy a directory tree (local, gs:// or s3://) into local_dir; returns local_dir."""
    loc = parse_uri(uri)
    local_dir = Path(local_dir)
    if not loc.is_remote:
        if not Path(loc.path).is_dir():
            raise UserError(f"{uri}: no such directory")
        shutil.copytree(loc.path, local_dir, dirs_exist_ok=True)
        return local_dir
    files = list_files(uri)
    if not files:
        raise UserError(f"{uri}: no such directory (no objects under this prefix)")
    fs = filesystem(loc.scheme)
    with store_errors(loc):
        for rel in files:
            target = local_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(loc.child(rel).fs_path(), str(target))
    return local_dir


def local_copy(uri: str) -> tuple[Path, tempfile.TemporaryDirectory | None]:
    """A local path for a directory URI: itself when local, else a downloaded temp copy.

    Returns (path, tmp) where tmp must be cleaned up by the caller (None when local).
    """
    loc = parse_uri(uri)
    if not loc.is_remote:
        if not Path(loc.path).is_dir():
            raise UserError(f"{uri}: no such directory")
        return Path(loc.path), None
    tmp = tempfile.TemporaryDirectory(prefix="imgclf-dl-")
    return download_dir(uri, tmp.name), tmp


def upload_file(local_path: str | Path, uri: str) -> None:
    """Copy one local file to uri (an object store key, or a local path)."""
    loc = parse_uri(uri)
    fs = filesystem(loc.scheme)
    with store_errors(loc):
        if not loc.is_remote:
            Path(loc.path).parent.mkdir(parents=True, exist_ok=True)
        fs.put_file(str(local_path), loc.fs_path())


def copy_object(src_uri: str, dst_uri: str) -> None:
    """Server-side copy of one object inside the same store (S3 CopyObject, GCS rewrite)."""
    src, dst = parse_uri(src_uri), parse_uri(dst_uri)
    with store_errors(dst):
        filesystem(dst.scheme).copy(src.fs_path(), dst.fs_path())


def remove_tree(uri: str) -> None:
    """Delete everything under a directory / prefix; nothing when it is absent."""
    loc = parse_uri(uri)
    if not loc.is_remote:
        shutil.rmtree(loc.path, ignore_errors=True)
        return
    fs = filesystem(loc.scheme)
    files = list_files(uri)
    with store_errors(loc):
        if files:
            fs.rm([loc.child(rel).fs_path() for rel in files])


def create_exclusive(uri: str, data: bytes) -> bool:
    """Create the file/object only if nothing exists there; True if this call created it.

    Uses the store's own atomic precondition: a hard link locally (fails if the name
    exists, and readers never see a partial file), S3 `If-None-Match: *`, GCS
    `ifGenerationMatch=0`. Of any number of concurrent callers exactly one gets True.
    A lost response that the client retries reads as False, which only ever skips a number.
    """
    loc = parse_uri(uri)
    if not loc.is_remote:
        with _temp_file_beside(Path(loc.path), data) as tmp:
            try:
                os.link(tmp, loc.path)  # fails if the target exists
                return True
            except FileExistsError:
                return False
    with store_errors(loc):
        try:
            filesystem(loc.scheme).pipe_file(loc.fs_path(), data, mode="create")
            return True
        except FileExistsError:
            return False


@contextmanager
def _temp_file_beside(path: Path, data: bytes):
    """A temp file holding data in path's directory (created if needed), for the caller to publish as path
    (link or rename); removed on leaving unless it was renamed away."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        yield tmp
    finally:
        Path(tmp).unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a local text file via a temp file and rename, so readers never see half a file."""
    with _temp_file_beside(Path(path), text.encode()) as tmp:
        os.replace(tmp, path)


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
