"""The repository's files as they were at a git revision, for `plan --since REF`
(docs/plan.md, Plan since a git revision).

REF's run files and config, read from git's object store (`git ls-tree`, `git cat-file`), are written into
a temporary directory, which the same loader then reads as a repository of its own: the working tree, the
index and HEAD are untouched, and nothing there is rendered differently from the current files. git's
failures become one line each.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from msgspec.structs import replace

from intuned_runs import heap
from intuned_runs.config import Config
from intuned_runs.desired import Desired, load
from intuned_runs.errors import ProblemsFound, UsageError
from intuned_runs.repository import Repository
from intuned_runs.runs import Loader

GIT_TIMEOUT = 120.0  # seconds; a repository's history is local, so this bounds only a stuck git
SYMLINK = "120000"
FILE_MODES = ("100644", "100755", SYMLINK)


def _git(directory: Path, *args: str, input: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            ["git", "-C", str(directory), *args], input=input, capture_output=True, timeout=GIT_TIMEOUT, check=False
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


def materialise(top: Path, commit: str, repository: Path, into: Path) -> Path:
    """Write the YAML files of `commit` below the repository's folder into `into`, where `into` stands for
    `top`, the top of the work tree. Returns where the repository is in there."""
    prefix = repository.relative_to(top).as_posix() if repository != top else ""
    # The tree as git stores it (`git archive` would apply export-ignore and export-subst attributes), and
    # only what the loader reads: the config and the run files, all YAML (other files of REF may be large).
    listed = _git(top, "ls-tree", "-r", "-z", "--full-tree", commit, *(["--", prefix] if prefix else []))
    if listed.returncode != 0:
        said = listed.stderr.decode("utf-8", "replace").strip().splitlines()
        raise UsageError(f"--since: git ls-tree {commit} failed: {said[-1] if said else listed.returncode}")
    wanted: list[tuple[str, str, str]] = []  # (mode, object, path)
    for entry in listed.stdout.decode("utf-8", "surrogateescape").split("\0"):
        meta, _, path = entry.partition("\t")
        mode, kind, obj = [*meta.split(" "), "", "", ""][:3]
        if kind == "blob" and mode in FILE_MODES and path.endswith((".yaml", ".yml")) and _inside(path):
            wanted.append((mode, obj, path))
    if wanted:
        batch = _git(top, "cat-file", "--batch", input="".join(f"{obj}\n" for _, obj, _ in wanted).encode())
        if batch.returncode != 0:
            raise UsageError(f"--since: git cat-file of {commit} failed")
        data, at = batch.stdout, 0
        for mode, _, path in wanted:
            header_end = data.index(b"\n", at)
            size = int(data[at:header_end].split(b" ")[2])
            content = data[header_end + 1 : header_end + 1 + size]
            at = header_end + 1 + size + 1  # the object, then a newline
            target = into / path
            target.parent.mkdir(parents=True, exist_ok=True)
            if mode == SYMLINK:
                # As in the work tree; the loader refuses a link that resolves outside the repository.
                target.symlink_to(content.decode("utf-8", "surrogateescape"))
            else:
                target.write_bytes(content)
    # Config discovery stops at the directory holding `.git` (docs/configuration.md), as in the work tree.
    (into / ".git").mkdir(exist_ok=True)
    inside = into / prefix if prefix else into
    inside.mkdir(parents=True, exist_ok=True)
    return inside


def _inside(path: str) -> bool:
    """A tree path that stays below the top (git refuses others; this does not depend on it)."""
    parts = path.split("/")
    return not path.startswith("/") and all(part not in ("", ".", "..") for part in parts)


def desired_at(repository: Repository, ref: str) -> Desired:
    """The desired runs of `repository` as they were at REF: its files written out by git, read by the same
    loader with the same flags, environment and request schema (so only the files differ)."""
    config = repository.config
    top = work_tree(config.repository)
    commit = commit_of(top, ref)
    with tempfile.TemporaryDirectory(prefix="intuned-runs-since-") as temporary:
        into = Path(temporary)
        inside = materialise(top, commit, config.repository, into)
        settings = replace(config.settings, chdir=str(inside), config=None)
        if config.path is not None and config.path.is_relative_to(top):
            then = into / config.path.relative_to(top)
            settings = replace(settings, config=str(then) if then.is_file() else None)
        try:
            then_config = Config(settings, repository.environ)
        except ProblemsFound as e:  # REF's config itself was broken: no runs could be read there
            return Desired((), (), tuple(e.problems), frozenset())
        # The same selection as now: only planned runs' requests are rendered (docs/plan.md, Selection).
        selection = repository.selection
        wanted = None if selection.everything else selection.planned
        with heap.loading():
            return load(
                then_config,
                repository.checker,
                repository.environ,
                lambda: Loader(then_config, repository.checker, wanted),
            )
