"""Shared states end to end (docs/shared-state.md): where the state lives (`state:`, `--state`, environments),
the guarantees of every backend (stale saved plans, the workspace, status without serial changes, a plan
that writes nothing), `state migrate` between backends, and a missing extra."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from intuned_runs.emulator.server import Emulator
from intuned_runs.location import FileLocation, PostgresLocation, S3Location, parse_location
from tests.helpers import OTHER_WS, WS, Repo, context, remote
from tests.services import PostgresServer
from tests.state_backends import PostgresStateStore

SUPPORTED = "the state is a path, postgresql://… (or postgres://…) or s3://…"


# -- locations ---------------------------------------------------------------------------------------


def test_a_postgresql_url_keeps_its_password_out_of_the_display() -> None:
    location = parse_location(
        "postgresql://ci:s3cr%40t-pw@db.internal:5433/intuned?name=prod&sslmode=require", Path("/r")
    )
    assert isinstance(location, PostgresLocation)
    assert (location.name, location.schema, location.password) == ("prod", "intuned_runs", "s3cr@t-pw")
    assert location.display == "postgresql://ci:***@db.internal:5433/intuned?name=prod&sslmode=require"
    assert location.conninfo == "postgresql://ci:s3cr%40t-pw@db.internal:5433/intuned?sslmode=require"
    assert "s3cr" not in repr(location)
    short = parse_location("postgres://db/intuned", Path("/r"))
    assert isinstance(short, PostgresLocation)
    assert (short.name, short.schema, short.password, short.display) == (
        "default",
        "intuned_runs",
        None,
        "postgres://db/intuned",
    )


def test_an_s3_url_and_a_path() -> None:
    location = parse_location(
        "s3://bucket/prod/state.json?endpoint=http://127.0.0.1:9000&region=eu-west-1&path_style=true", Path("/r")
    )
    assert isinstance(location, S3Location)
    assert (location.bucket, location.key, location.endpoint, location.region, location.path_style) == (
        "bucket",
        "prod/state.json",
        "http://127.0.0.1:9000",
        "eu-west-1",
        True,
    )
    assert parse_location("states/prod.json", Path("/r")) == FileLocation(
        Path("/r/states/prod.json"), "states/prod.json"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("file:///tmp/state.json", f"unsupported state URL scheme 'file://': {SUPPORTED}"),
        ("gs://bucket/state.json", f"unsupported state URL scheme 'gs://': {SUPPORTED}"),
        ("postgress://db/intuned", f"unsupported state URL scheme 'postgress://': {SUPPORTED}"),
        ("postgresql://db", "state URL postgresql://db needs a database name: postgresql://HOST/DBNAME"),
        (
            "postgresql://u:pw-secret@db/x?schema=a;drop",
            "state URL postgresql://u:***@db/x?schema=a;drop: schema='a;drop' must be a plain identifier "
            "(letters, digits, _)",
        ),
        ("s3://bucket", "state URL s3://bucket needs a bucket and an object key: s3://BUCKET/KEY"),
        ("s3:/bucket/k", "state URL s3:/bucket/k is malformed: write s3://…"),
        ("gs:bucket/k", f"unsupported state URL scheme 'gs:': {SUPPORTED}"),
        (
            "s3://b/k?paths=true",
            "state URL s3://b/k?paths=true: unknown parameter 'paths' (known: endpoint, region, path_style)",
        ),
    ],
    ids=["file", "gs", "typo", "no-database", "bad-schema", "no-key", "one-slash", "no-slash", "unknown-parameter"],
)
def test_a_state_url_that_cannot_be_used_is_one_error_line(user_repo: Repo, text: str, message: str) -> None:
    user_repo.write("runs.d/a.yaml", "runs: []\n")
    result = user_repo.cli("plan", "--state", text)
    assert (result.code, result.out, result.err_lines) == (1, "", [f"error: --state: {message}"])
    user_repo.write("intuned-runs.yaml", f"max_submit: 5\nstate: '{text}'\n")
    result = user_repo.cli("state", "list")
    assert (result.code, result.out) == (1, "")
    assert result.err_lines == [f"intuned-runs.yaml:2:8: error: state: {message}"]
    assert "pw-secret" not in result.err
    assert not (user_repo.root / ".intuned-runs").exists()  # never a relative file path


def test_validate_and_render_do_not_contact_a_shared_state(user_repo: Repo) -> None:
    # A pre-commit hook or a fork's pull request has no credentials for the shared state; plan needs it.
    user_repo.write("intuned-runs.yaml", "state: 'postgresql://ci:pw-secret@127.0.0.1:1/intuned'\n")
    user_repo.standard()
    assert user_repo.cli("validate").code == 0
    assert user_repo.cli("render", "--json").code == 0
    result = user_repo.cli("plan")
    assert result.code == 1
    assert result.err_lines[-1].startswith("error: cannot connect to state postgresql://ci:***@127.0.0.1:1/intuned")
    assert "pw-secret" not in result.err


def test_an_environment_needs_its_own_state_under_a_url(user_repo: Repo) -> None:
    user_repo.write(
        "intuned-runs.yaml",
        """\
        state: postgresql://ci@db.internal/intuned
        environments:
          prod: {state: "postgresql://ci@db.internal/intuned?name=prod"}
          staging: {vars: {region: eu}}
        """,
    )
    user_repo.write("runs.d/a.yaml", "runs: []\n")
    for argv in (["--env", "staging", "plan"], ["--env", "staging", "state", "list"]):
        result = user_repo.cli(*argv)
        assert (result.code, result.out) == (1, "")
        assert result.err_lines[-1] == "error: environment staging needs its own state: set environments.staging.state"


def test_a_missing_extra_is_one_error_line_naming_the_pip_command(
    user_repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_repo.write("runs.d/a.yaml", "runs: []\n")
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if it were not installed
    monkeypatch.delitem(sys.modules, "intuned_runs.state.postgres", raising=False)
    monkeypatch.delitem(sys.modules, "intuned_runs.state.pg_journal", raising=False)
    result = user_repo.cli("plan", "--state", "postgresql://ci:pw-secret@db.internal/intuned")
    assert (result.code, result.out) == (1, "")
    assert result.err_lines[-1] == (
        "error: state postgresql://ci:***@db.internal/intuned needs psycopg, which is not installed: "
        "pip install 'intuned-runs[postgres]'"
    )
    assert "Traceback" not in result.err


# -- every backend's guarantees ------------------------------------------------------------------------


@pytest.fixture
def shared_repo(user_repo: Repo, state_backend: Callable[[Repo], Repo]) -> Repo:
    user_repo.standard()
    return state_backend(user_repo)


def test_a_saved_plan_goes_stale_when_another_runner_applies(
    shared_repo: Repo, emulator: Emulator, tmp_path: Path
) -> None:
    plan_file = tmp_path / "plan.json"
    assert shared_repo.cli("plan", "--out", str(plan_file), "--workspace-id", WS).code == 0
    assert json.loads(plan_file.read_text(encoding="utf-8"))["state_path"] == shared_repo.store.display
    assert shared_repo.cli("apply", "--yes", "--select", "daily-us", *remote(emulator)).code == 0
    sent = len(emulator.received)
    result = shared_repo.cli("apply", str(plan_file), *remote(emulator))
    assert result.code == 1
    assert (
        result.err_lines[-1]
        == "error: Saved plan is stale: the state changed since the plan (serial 0 → 1): plan again"
    )
    elsewhere = shared_repo.cli("apply", str(plan_file), *remote(emulator), "--state", str(tmp_path / "other.json"))
    assert elsewhere.err_lines[-1] == (
        f"error: Saved plan is stale: it was made for state {shared_repo.store.display}, this apply uses "
        f"{tmp_path / 'other.json'}"
    )
    assert len(emulator.received) == sent


def test_another_workspace_is_refused_and_status_keeps_the_serial(shared_repo: Repo, emulator: Emulator) -> None:
    assert shared_repo.cli("apply", "--yes", *remote(emulator)).code == 0
    before = shared_repo.state()
    refused = shared_repo.cli("apply", "--yes", "--run", "daily-us", *remote(emulator, OTHER_WS))
    assert refused.code == 1
    assert refused.err_lines[-1] == (
        f"error: the state {shared_repo.store.display} belongs to workspace {WS}, not {OTHER_WS}: use the right "
        "--env or state file"
    )
    status = shared_repo.cli("status", *remote(emulator))
    assert status.code == 0, status.err
    after = shared_repo.state()
    assert after["serial"] == before["serial"]
    assert {e["status"] for e in after["entries"].values()} == {"completed"}
    assert {e["status"] for e in before["entries"].values()} == {"pending"}


def test_plan_takes_no_lock_and_writes_nothing(user_repo: Repo, postgres_server: PostgresServer) -> None:
    import psycopg

    user_repo.standard()
    url = postgres_server.url("untouched", schema="never_created")
    with PostgresStateStore(postgres_server.url("held"), postgres_server.conninfo(), "held").lock("intuned-runs apply"):
        result = user_repo.cli("plan", "--state", url)
    assert result.code == 0, result.err
    assert result.err_lines[0] == context(state=url.replace(f":{postgres_server.password}@", ":***@"))
    with psycopg.connect(postgres_server.conninfo()) as conn:
        row = conn.execute("SELECT to_regnamespace('never_created')").fetchone()
    assert row == (None,)  # not even the schema: a plan creates nothing


# -- state migrate -----------------------------------------------------------------------------------


@pytest.fixture
def history(user_repo: Repo) -> Repo:
    """A state with submissions, an unknown outcome, a tombstone and a recorded workspace."""
    user_repo.standard()
    with Emulator(complete_after=0) as emu:
        assert user_repo.cli("apply", "--yes", *remote(emu)).code == 0
    with Emulator(complete_after=0, script=[500]) as emu:
        assert user_repo.cli("apply", "--yes", "--run", "daily-us", *remote(emu)).code == 1
    (user_repo.root / "runs.d/ops.yaml").unlink()  # removed from the files: apply keeps a tombstone
    with Emulator(complete_after=0) as emu:
        applied = user_repo.cli("apply", "--yes", "--exclude", "hourly", *remote(emu))
        assert not emu.received, applied.err  # only the forget: daily-us stays blocked, hourly excluded
    return user_repo


def test_migrate_file_to_postgresql_and_back_keeps_everything(
    history: Repo, postgres_server: PostgresServer, tmp_path: Path
) -> None:
    source = history.store.read()
    assert source is not None
    document = json.loads(source)
    assert document["serial"] == 3
    url = postgres_server.url(f"migrated-{tmp_path.name}")
    masked = url.replace(f":{postgres_server.password}@", ":***@")
    result = history.cli("state", "migrate", "--to", url, "--yes")
    assert result.code == 0, result.err
    assert result.out_lines == [
        f"Copied state .intuned-runs/state.json to {masked} (lineage {document['lineage']}, serial 3, 3 entries).",
        "Put this in the config (its password goes in PGPASSWORD or ~/.pgpass, not in the file):",
        f"state: {masked}",
    ]
    assert history.store.read() == source  # the source is left as it was
    pg = PostgresStateStore(url, postgres_server.conninfo(), f"migrated-{tmp_path.name}")
    assert pg.read() == source  # every value, timestamps included, byte for byte
    # The plan against the new state is the plan against the old one.
    assert history.cli("plan", "--state", url).out == history.cli("plan").out

    back = tmp_path / "back" / "state.json"
    result = history.cli("state", "migrate", "--to", str(back), "--yes", "--state", url)
    assert result.code == 0, result.err
    assert result.out_lines[-1] == f"state: {back}"
    assert back.read_bytes() == source


def test_migrate_refuses_a_target_that_holds_a_state(shared_repo: Repo, emulator: Emulator, tmp_path: Path) -> None:
    assert shared_repo.cli("apply", "--yes", *remote(emulator)).code == 0
    target = tmp_path / "target.json"
    assert shared_repo.cli("state", "migrate", "--to", str(target), "--yes").code == 0
    again = shared_repo.cli("state", "migrate", "--to", str(target), "--yes")
    lineage = shared_repo.state()["lineage"]
    assert (again.code, again.out) == (1, "")
    assert again.err_lines == [
        f"error: state {target} already holds a state (lineage {lineage}, serial 1): refusing to overwrite it; "
        "migrate to an empty location, or remove that state first"
    ]
    unconfirmed = shared_repo.cli("state", "migrate", "--to", str(tmp_path / "new.json"))
    assert unconfirmed.err_lines[-1] == (
        f"error: Copy state {shared_repo.store.display} to {tmp_path / 'new.json'}: this needs confirmation; pass --yes"
    )
    assert not (tmp_path / "new.json").exists()
    itself = shared_repo.cli(
        "state",
        "migrate",
        "--to",
        shared_repo.store.args[1] if shared_repo.store.args else ".intuned-runs/state.json",
        "--yes",
    )
    assert itself.err_lines[-1] == f"error: --to names the state itself ({shared_repo.store.display})"
    with shared_repo.store.lock("intuned-runs apply"):
        locked = shared_repo.cli("state", "migrate", "--to", str(tmp_path / "new.json"), "--yes")
    assert locked.code == 1 and "state is locked by pid" in locked.err


def test_migrate_refuses_a_source_that_holds_no_state(user_repo: Repo, tmp_path: Path) -> None:
    user_repo.write("runs.d/a.yaml", "runs: []\n")
    result = user_repo.cli("state", "migrate", "--state", "typo.json", "--to", "copy.json", "--yes")
    assert (result.code, result.out) == (1, "")
    assert result.err_lines[-1] == "error: there is no state at typo.json to copy: check --state or the config's state"
    assert not (user_repo.root / "copy.json").exists()


def test_migrate_names_the_target_when_its_lock_is_held(history: Repo) -> None:
    from intuned_runs.state.lock import StateLock

    target = history.root / "copy.json"
    with StateLock(target, "intuned-runs apply").acquire(0):
        result = history.cli("state", "migrate", "--to", "copy.json", "--yes")
    assert result.code == 1
    assert result.err_lines[-1].startswith("error: the target copy.json: state is locked by pid ")
    assert result.err_lines[-1].endswith("(with --state copy.json)")
    assert not target.exists()
