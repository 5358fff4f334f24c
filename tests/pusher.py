"""A pusher process for the storage contract tests: imports and connects first, then waits for a go line.

Usage: python -m tests.pusher READY_FILE -- <imgclf-push arguments>
Touches READY_FILE once the store answered, waits for a line on stdin, then runs imgclf-push, so
two pushers released together really race (both normally check the store before either publishes).
"""

from __future__ import annotations

import sys
from pathlib import Path

from imgclf.data import versions
from imgclf.errors import run_cli
from imgclf.steps import push


def main() -> int:
    ready, sep, *push_args = sys.argv[1:]
    assert sep == "--", "usage: python -m tests.pusher READY -- <imgclf-push args>"
    base = push_args[push_args.index("--push-base") + 1]
    versions.taken_versions(versions.model_base(base, push_args[push_args.index("--model-name") + 1]))
    Path(ready).touch()
    sys.stdin.readline()
    return run_cli(push.main, push_args)


if __name__ == "__main__":
    raise SystemExit(main())
