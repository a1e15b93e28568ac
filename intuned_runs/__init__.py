"""intuned-runs: Intuned runs kept as code, planned and applied like Terraform."""

__version__ = "0.1.0"

# The `format_version` of every JSON document the tool prints or saves (validate, render, plan, apply,
# status, state): bumped only with a breaking change of their shape.
FORMAT_VERSION = 1
