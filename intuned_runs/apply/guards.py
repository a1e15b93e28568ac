"""Every check that refuses an apply before anything is sent (docs/apply.md, Guards).

Each raises Refused (or StalePlan) with a message that says what to do; none of them sends a request.
"""

from __future__ import annotations

from intuned_runs.api.client import check_base_url
from intuned_runs.config import Config
from intuned_runs.errors import Refused
from intuned_runs.state.model import State

NEEDS_CONFIRMATION = (
    "apply needs confirmation: run it in a terminal, pass --yes, or apply a saved plan "
    "(intuned-runs plan --out FILE; intuned-runs apply FILE)"
)


def target(config: Config, api_key: str) -> tuple[str, str]:
    """(workspace ID, base URL) to send to: both set and valid, and a key to send with."""
    workspace = config.require_workspace_id()
    base_url = check_base_url(config.base_url)
    if not api_key:
        raise Refused("INTUNED_API_KEY is not set: export the workspace's API key (it is never read from a file)")
    if not api_key.isascii() or not api_key.isprintable():  # an HTTP header holds printable ASCII only
        raise Refused("INTUNED_API_KEY is not a valid API key (printable ASCII only): export the workspace's key")
    return workspace, base_url


def same_workspace(state: State, workspace: str, display: str) -> None:
    """The first apply records its workspace in the state; an apply to another is refused."""
    if state.workspace_id is not None and state.workspace_id != workspace:
        raise Refused(
            f"the state {display} belongs to workspace {state.workspace_id}, "
            f"not {workspace}: use the right --env or state file"
        )


def secrets_decodable(names: list[str]) -> None:
    if names:
        raise Refused(f"secrets not valid UTF-8: {', '.join(names)} (needed by runs to submit): set them to UTF-8 text")


def secrets_set(missing: list[str]) -> None:
    if missing:
        raise Refused(f"secrets not set: {', '.join(missing)} (needed by runs to submit): export them and retry")


def within_max_submit(count: int, limit: int, *, interactive: bool) -> None:
    """Without a person at a terminal, a plan submitting more than max_submit runs is refused, so a lost
    state can never resubmit a whole repository in CI (saved plans too: plan --out, then apply FILE)."""
    if not interactive and count > limit:
        runs = f"{count} run" if count == 1 else f"{count} runs"
        raise Refused(
            f"the plan submits {runs}, more than max_submit {limit}: check the state is the "
            f"right one, then pass --max-submit {count} (or set max_submit in the config)"
        )
