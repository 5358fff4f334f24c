"""User-facing errors: one line naming the file, field or value, and a non-zero exit."""

from __future__ import annotations

import os
import sys
from typing import Callable

# Set by the local runner: a step that fails on a UserError appends its one line here, so the
# run can end by repeating it.
STEP_ERROR_FILE_ENV = "IMGCLF_STEP_ERROR_FILE"


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


def exit_on_user_error(step: str) -> None:
    """Inside a KFP component: a UserError that escapes ends the task with `error: <step>: <message>`.

    One line on stderr and a non-zero exit, no traceback (other exceptions keep theirs: they are
    bugs). Called first thing in each component's body; it installs this process's excepthook.
    """
    previous = sys.excepthook

    def hook(kind, exc, tb):
        if not isinstance(exc, UserError):
            return previous(kind, exc, tb)
        line = f"error: {step}: {exc}"
        print(line, file=sys.stderr, flush=True)
        path = os.environ.get(STEP_ERROR_FILE_ENV)
        if path:
            with open(path, "a", encoding="utf-8") as f:
                f.write(line + "\n")

    sys.excepthook = hook
