"""`intuned-runs init [DIR]` (docs/cli.md, init): start a repository that validates and applies to the
emulator at once. It never overwrites a file: when one exists it names them all and writes nothing."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from intuned_runs.errors import EXIT_OK, UsageError
from intuned_runs.report.output import Output
from intuned_runs.state.store import GITIGNORE

CONFIG = """\
# intuned-runs configuration (see docs/configuration.md). Every key is optional.

# The Intuned workspace (a UUID), needed by apply, status and watch --apply. INTUNED_WORKSPACE_ID or
# --workspace-id set it too; `intuned-runs apply --emulator` needs none.
# workspace_id: "3f0c9a52-7a41-4d55-9a53-2f1d7c1e8b10"

# base_url: https://app.intuned.io/api/v1/workspace
runs_dir: runs.d                   # where the run files are (default: runs.d)
# state: .intuned-runs/state.json  # a path, or postgresql://... or s3://... for a shared state
default_project: my-project        # the project of runs that name none
# max_submit: 100                  # apply without a TTY refuses plans that submit more runs
# env_allow: []                    # globs of environment variables templates may read as env.NAME (default:
#                                  # none; credential-looking names only by exact name: use secret('NAME'))
# unknown_keys: error              # error | warn: request keys the Run API schema does not define

vars:                              # templates read them as vars.NAME; --var KEY=VALUE overrides
  region: us
  limit: 50

# environments:                    # selected with --env NAME; each may set any key above
#   prod:
#     workspace_id: "{{ env.INTUNED_WORKSPACE_ID }}"
#     vars: {region: eu}
"""

EXAMPLE = """\
# Run definitions (see docs/run-files.md). A run's key is PROJECT/NAME; `request` is the Run API request
# body, sent as written after rendering. Try: intuned-runs plan, then intuned-runs apply --emulator --yes.
defaults:                          # merged under every run of this file
  labels: {team: data}
runs:
  # trigger: on-change (the default): submitted when it is new or its definition changed
  - name: products-daily
    request:
      api: products/list
      parameters: {region: "{{ vars.region }}", limit: "{{ vars.limit }}"}

  # trigger: always: submitted on every apply (for scheduled CI); results go to a webhook whose
  # token is a secret, read from the environment variable WEBHOOK_TOKEN only when apply sends it
  - name: prices-hourly
    trigger: always
    request:
      api: prices/list
      parameters: {region: "{{ vars.region }}"}
      sink:
        type: webhook
        url: https://hooks.example.com/intuned
        headers: {Authorization: "Bearer {{ secret('WEBHOOK_TOKEN') }}"}

  # trigger: manual: submitted only when asked for: intuned-runs apply --run my-project/catalog-backfill
  - name: catalog-backfill
    trigger: manual
    request:
      api: catalog/backfill
      parameters: {since: "2026-01-01"}
"""

FILES = {
    "intuned-runs.yaml": CONFIG,
    "runs.d/example.yaml": EXAMPLE,
    ".intuned-runs/.gitignore": GITIGNORE,
}


def run(args: argparse.Namespace, out: Output) -> int:
    if args.chdir and not Path(args.chdir).is_dir():  # as for every command (docs/cli.md, Global options)
        raise UsageError(f"-C {args.chdir}: no such directory")
    base = Path(args.chdir or ".") / args.directory
    existing = [name for name in FILES if (base / name).exists() or (base / name).is_symlink()]
    if existing:
        raise UsageError(f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}: nothing written")
    for name, text in FILES.items():
        path = base / name
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # O_EXCL: a file that appeared since the check is never overwritten either
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except OSError as e:
            raise UsageError(f"cannot create {path}: {e.strerror}") from e
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        out.out(f"Created {name}")
    where = "" if args.directory == "." else f"cd {args.directory} && "
    out.out(f"Next: {where}intuned-runs validate && intuned-runs apply --emulator --yes (no account needed)")
    return EXIT_OK
