"""What the command handlers share: settings from the flags, the repository and its state, the validation
every command runs first, signal handling, the emulator of `--emulator`, the API client."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from msgspec.structs import replace

from intuned_runs import heap
from intuned_runs.config import EMULATOR_WORKSPACE, Settings
from intuned_runs.desired import Desired
from intuned_runs.errors import Interrupted
from intuned_runs.fingerprint import FINGERPRINT_VERSION
from intuned_runs.location import FileLocation, Location
from intuned_runs.problems import Problem, errors_in, strictly
from intuned_runs.report.output import Output
from intuned_runs.report.plan import Context
from intuned_runs.report.problems import problems_text, resolve_format
from intuned_runs.repository import Repository
from intuned_runs.selection import Selection
from intuned_runs.state.backend import Backend, open_backend
from intuned_runs.state.lock import Holder
from intuned_runs.state.model import State
from intuned_runs.state.upgrade import upgrader

if TYPE_CHECKING:
    from intuned_runs.apply.signals import Signals


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings(
        chdir=args.chdir,
        config=args.config,
        env=args.env,
        vars=(*(args.vars or ()), *(getattr(args, "vars_after", None) or ())),
        workspace_id=args.workspace_id,
        base_url=args.base_url,
        state=getattr(args, "state", None),
    )


def selection_from(args: argparse.Namespace) -> Selection:
    """--select, --run and --exclude (docs/plan.md, Selection)."""
    return Selection.of(args.select, args.force, args.exclude)


def open_repository(
    settings: Settings,
    out: Output,
    environ: Mapping[str, str] | None = None,
    *,
    selection: Selection | None = None,
    sends: bool = True,
) -> Repository:
    """The repository, with the output's redactor taught its secrets before anything is printed. With a
    selection, only the planned runs' requests are rendered (docs/plan.md, Selection)."""
    repository = Repository(settings, environ, selection, sends=sends)
    out.redactor = repository.redactor()
    return repository


def context_of(repository: Repository, backend: Backend) -> Context:
    """What a plan or apply works against: env, workspace, state (docs/plan.md, Text output)."""
    config = repository.config
    return Context(config.env_name, config.workspace_if_known(), backend.display)


def backend_of(repository: Repository, out: Output, location: Location | None = None) -> Backend:
    """The backend of the repository's state, or of `location` (`state migrate --to`)."""
    config = repository.config
    return open_backend(
        location or config.state_location,
        redactor=out.redactor,
        upgrade=upgrader(repository.schema),
        fingerprint_version=FINGERPRINT_VERSION,
        schema_version=repository.schema_version,
    )


def load_state(backend: Backend) -> State:
    """The state as a reader sees it; a state that cannot be trusted is an error for every command
    (docs/apply.md, Crash safety)."""
    with heap.loading():
        return backend.load()


def check_state_file(repository: Repository, out: Output) -> None:
    """validate and render: a state file that cannot be trusted is an error for them too, but a shared
    state is not contacted (docs/shared-state.md): a pre-commit hook or a fork has no credentials for it."""
    if isinstance(repository.config.state_location, FileLocation):
        load_state(backend_of(repository, out))


def load_for_plan(backend: Backend) -> tuple[State, Holder | None]:
    """The state, and who holds its lock when it has intents without outcome: those are an apply's sending
    right now, in progress rather than blocked (docs/plan.md, Blocked and in-progress runs)."""
    state = load_state(backend)
    if not any(e.unknown is not None and e.unknown.in_flight for e in state.entries.values()):
        return state, None
    holder = backend.holder()
    if holder is None:
        # The apply may have finished between the read and the probe: read again what it recorded.
        state = load_state(backend)
    return state, holder


def report_problems(out: Output, problems: list[Problem], fmt: str, *, to_stdout: bool) -> None:
    for line in problems_text(problems, fmt, out.paint if to_stdout else out.paint_err):
        (out.out if to_stdout else out.err)(line)


def validated(repository: Repository, out: Output, *, strict: bool = False) -> Desired | None:
    """Every command but validate runs the same validation first, problems on stderr; None on errors."""
    desired = repository.desired
    problems = strictly(desired.problems, strict)
    report_problems(out, problems, resolve_format("auto"), to_stdout=False)
    return None if errors_in(problems) else desired


@contextlib.contextmanager
def catching_signals(out: Output, *, interrupt_until_sending: bool = False) -> Iterator[Signals]:
    """SIGINT/SIGTERM: stop new submissions; a second SIGINT abandons in-flight ones (docs/apply.md,
    Signals). The previous handlers come back afterwards (main() may be called in-process)."""
    from intuned_runs.apply.signals import Signals

    signals = Signals.new()

    def handle(signum: int, frame: object) -> None:
        if interrupt_until_sending and not signals.sending.is_set():
            # Nothing sent yet (waiting for the lock, at the prompt): stop right away; the lock is
            # released on the way out and main() exits 130.
            raise Interrupted("nothing was submitted")
        if signals.stop.is_set() and signum == signal.SIGINT:
            signals.abandon.set()
            out.err("interrupted again: abandoning in-flight requests (recorded as unknown)")
        else:
            signals.stop.set()
            out.err("interrupted: no new submissions; waiting for in-flight ones (Ctrl-C again to abandon)")

    previous = signal.signal(signal.SIGINT, handle), signal.signal(signal.SIGTERM, handle)
    try:
        yield signals
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])


@contextlib.contextmanager
def emulated(settings: Settings, environ: dict[str, str], out: Output) -> Iterator[Settings]:
    """`--emulator`: an in-process emulator, a throwaway key and workspace, a state of its own
    (docs/apply.md, Emulator mode). Yields the settings that point at it; `environ` gets the key."""
    from intuned_runs.emulator.server import Emulator

    with Emulator(complete_after=1.0) as emulator:
        environ["INTUNED_API_KEY"] = "emulator-throwaway-key"
        environ.pop("INTUNED_WORKSPACE_ID", None)
        out.info(f"Using the built-in emulator at {emulator.url} (nothing leaves this machine).")
        yield replace(settings, base_url=emulator.url, workspace_id=EMULATOR_WORKSPACE, emulator=True)


def environment() -> dict[str, str]:
    """The environment variables, read once per command (docs/watch.md: once per watch session)."""
    return dict(os.environ)
