"""`python3 -m intuned_runs` is the same as `intuned-runs` (docs/cli.md)."""

import sys

from intuned_runs.cli import main

sys.exit(main())
