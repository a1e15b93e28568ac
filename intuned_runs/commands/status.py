"""`intuned-runs status` (docs/state.md, status): the current result of runs in the state."""

from __future__ import annotations

import argparse

from intuned_runs.api.client import Client
from intuned_runs.commands.common import backend_of, environment, load_state, open_repository, settings_from
from intuned_runs.errors import EXIT_CHANGES, EXIT_ERROR, EXIT_OK, Refused
from intuned_runs.report.output import Output
from intuned_runs.report.status import status_json, status_line
from intuned_runs.results import fetch, finals, tracked
from intuned_runs.selection import parse
from intuned_runs.state.statuses import record_statuses


def run(args: argparse.Namespace, out: Output) -> int:
    environ = environment()
    repository = open_repository(settings_from(args), out, environ)
    backend = backend_of(repository, out)
    runs = tracked(load_state(backend), parse(args.selectors))
    api_key = environ.get("INTUNED_API_KEY", "")
    if not api_key:
        raise Refused("INTUNED_API_KEY is not set: export the workspace's API key")
    workspace = repository.config.require_workspace_id()
    with Client(
        repository.config.base_url,
        workspace,
        api_key,
        read_timeout=args.read_timeout,
        redactor=out.redactor,
        log=out.log if out.debug else None,
        timing=out.err if out.verbose else None,
    ) as client:
        results = [fetch(client, run) for run in runs]
    if args.json:
        out.out(status_json(results))
    else:
        for result in results:
            out.out(status_line(result))
        if not results:
            out.info("No runs with a run ID in state.")
    warning = record_statuses(backend, finals(results), command="intuned-runs status", lock_timeout=args.lock_timeout)
    if warning:
        out.warning(warning)
    if any(r.fetch_error is not None for r in results):
        return EXIT_ERROR
    if args.detailed_exitcode and any(r.status in ("failed", "canceled") for r in results):
        return EXIT_CHANGES
    return EXIT_OK
