"""User-facing errors: one line naming the file, field or value, and a non-zero exit."""

from __future__ import annotations

import sys
from typing import Callable


class UserError(Exception):
    """Bad input or environment the user can fix. The message is shown as one line."""


def run_cli(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> int:
    """Run a CLI entry point; turn UserError into `error: ...` on stderr and exit status 2."""
    try:
        return int(main(argv) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # unreadable input, unwritable output, a file where a directory belongs...
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if not _is_cloud_error(exc):
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        print(f"error: Google Cloud Storage: {first}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


def _is_cloud_error(exc: BaseException) -> bool:
    """Credentials or API errors from google-auth / google-api-core (missing bucket, no credentials...)."""
    return type(exc).__module__.startswith(("google.auth", "google.api_core"))
