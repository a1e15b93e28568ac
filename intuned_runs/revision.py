"""The repository's files as they were at a git revision, for `plan --since REF`
(docs/plan.md, Plan since a git revision).

git writes REF's run files and config (`git archive`) into a temporary directory, which the same loader
then reads as a repository of its own: the working tree, the index and HEAD are untouched, and nothing
there is rendered differently from the current files. git's failures become one line each.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from dataclasses import replace
from pathlib import Path

from intuned_runs import heap
from intuned_runs.config import Config
from intuned_runs.desired import Desired, load
from intuned_runs.errors import ProblemsFound, UsageError
from intuned_runs.repository import Repository

GIT_TIMEOUT = 120.0  # seconds; a repository's history is local, so this bounds only a stuck git


def _git(directory: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            ["git", "-C", str(directory), *args],
            capture_output=True,
            timeout=GIT_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError as e:
        raise UsageError("--since needs git: install it, or plan without --since") from e
    except subprocess.TimeoutExpired as e:
        raise UsageError(f"--since: git {args[0]} did not finish in {GIT_TIMEOUT:g} s") from e


def work_tree(directory: Path) -> Path:
    """The top of the git work tree holding `directory`."""
    done = _git(directory, "rev-parse", "--show-toplevel")
    top = done.stdout.decode("utf-8", "replace").strip()
    if done.returncode != 0 or not top:
        said = done.stderr.decode("utf-8", "replace").strip().splitlines()
        # git's own words when it is not the usual "not a git repository" (a "dubious ownership" refusal in a
        # CI container, say), so the cause is on the one line.
        why = f" (git: {said[0]})" if said and "not a git repository" not in said[0] else ""
        raise UsageError(
            f"--since: {directory} is not in a git work tree{why}: plan --since reads the run files from git"
        )
    return Path(top).resolve()


def commit_of(top: Path, ref: str) -> str:
    """The commit REF names; an unknown REF (or an option in disguise) is a usage error."""
    done = _git(top, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
    commit = done.stdout.decode("ascii", "replace").strip()
    if ref.startswith("-") or done.returncode != 0 or not commit:
        raise UsageError(
            f"--since {ref}: not a known git revision of this repository (a branch, tag or commit; "
            "fetch it first, e.g. git fetch origin main)"
        )
    return commit


def materialise(repository: Path, ref: str, into: Path, *, top: Path | None = None) -> Path:
    """Write REF's YAML files below the repository's folder into `into`, where `into` stands for the top of
    the work tree. Returns where the repository is in there."""
    top = top or work_tree(repository)
    commit = commit_of(top, ref)
    prefix = repository.relative_to(top).as_posix() if repository != top else ""
    base = f"{prefix}/" if prefix else ""
    # Only what the loader reads: the config and the run files, all YAML (other files of REF may be large).
    # One pathspec, as git refuses an archive when any of several matches nothing; the filter keeps
    # .yaml and .yml.
    done = _git(top, "archive", "--format=tar", commit, "--", f":(glob){base}**/*.y*ml")
    if done.returncode != 0:
        if b"did not match any files" in done.stderr:
            done = subprocess.CompletedProcess(done.args, 0, b"", b"")  # REF had no YAML there: no runs
        else:
            message = done.stderr.decode("utf-8", "replace").strip().splitlines()
            raise UsageError(f"--since {ref}: git archive failed: {message[-1] if message else done.returncode}")
    if done.stdout:
        with tarfile.open(fileobj=io.BytesIO(done.stdout)) as archive:
            kept = [k for m in archive.getmembers() if (k := _only_inside(m, str(into))) is not None]
            if hasattr(tarfile, "data_filter"):
                archive.extractall(into, members=kept, filter="fully_trusted")  # filtered just above
            else:
                archive.extractall(into, members=kept)
    # Config discovery stops at the directory holding `.git` (docs/configuration.md), as in the work tree.
    (into / ".git").mkdir(exist_ok=True)
    inside = into / prefix if prefix else into
    inside.mkdir(parents=True, exist_ok=True)
    return inside


def _only_inside(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
    """YAML files and folders, through tarfile's `data` filter (no absolute paths, no links out, no devices).
    A member it refuses is left out, as the loader would refuse to read it anyway (docs/run-files.md)."""
    if not (member.isdir() or member.name.endswith((".yaml", ".yml"))):
        return None
    data_filter = getattr(tarfile, "data_filter", None)
    if data_filter is None:  # a Python before 3.10.12 / 3.11.4: plain files and folders only
        parts = Path(member.name).parts
        safe = not member.name.startswith("/") and ".." not in parts
        return member if safe and (member.isfile() or member.isdir()) else None
    try:
        kept: tarfile.TarInfo | None = data_filter(member, path)
    except tarfile.FilterError:
        return None
    return kept


def desired_at(repository: Repository, ref: str) -> Desired:
    """The desired runs of `repository` as they were at REF: its files written out by git, read by the same
    loader with the same flags, environment and request schema (so only the files differ)."""
    config = repository.config
    top = work_tree(config.repository)
    with tempfile.TemporaryDirectory(prefix="intuned-runs-since-") as temporary:
        into = Path(temporary)
        inside = materialise(config.repository, ref, into, top=top)
        settings = replace(config.settings, chdir=str(inside), config=None)
        if config.path is not None and config.path.is_relative_to(top):
            then = into / config.path.relative_to(top)
            settings = replace(settings, config=str(then) if then.is_file() else None)
        try:
            then_config = Config(settings, repository.environ)
        except ProblemsFound as e:  # REF's config itself was broken: no runs could be read there
            return Desired((), (), tuple(e.problems), frozenset())
        with heap.loading():
            return load(then_config, repository.checker, repository.environ)
