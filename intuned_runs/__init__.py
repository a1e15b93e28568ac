"""intuned-runs: Intuned runs kept as code, planned and applied like Terraform."""

__version__ = "0.1.0"
