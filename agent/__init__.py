"""alert-agent: a self-hosted alert routing daemon."""

__version__ = "0.1.0"
