"""Which environment variables templates may read through `env` (docs/configuration.md, env_allow).

By default none: a run file in a pull request must not read CI's variables and print them in a plan.
The tool's own non-secret variables are always readable. A name that looks like a credential is admitted
only when `env_allow` lists it by its exact name, never by a glob: such values belong in `secret()`.
"""

from __future__ import annotations

import fnmatch
import re

ALWAYS_READABLE = frozenset({"INTUNED_WORKSPACE_ID", "INTUNED_BASE_URL", "INTUNED_RUNS_ENV"})
_CREDENTIAL = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|PRIVATE|API_KEY|ACCESS_KEY|_KEY\Z", re.IGNORECASE)


def looks_like_credential(name: str) -> bool:
    return _CREDENTIAL.search(name) is not None


def refusal(name: str, allow: tuple[str, ...]) -> str | None:
    """None when `env.NAME` may be read, else the error saying why not and what to do."""
    if name in ALWAYS_READABLE or name in allow:
        return None
    if looks_like_credential(name):
        return (
            f"environment variable {name} is not allowed by env_allow: it looks like a credential, which a glob "
            f"never admits; use {{{{ secret('{name}') }}}} inside request (or list {name} by its exact name)"
        )
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in allow):
        return None
    return f"environment variable {name} is not allowed by env_allow (add it to env_allow)"
