"""alert-agent: a self-hosted alert routing daemon."""

__version__ = "0.1.0"

# The User-Agent of the CLI's API calls: an acknowledgment made with ``alert-agent ack`` is
# recorded as through "cli" (a label the caller's key vouches for, like ``by``).
CLI_PRODUCT = "alert-agent-cli"
CLI_USER_AGENT = f"{CLI_PRODUCT}/{__version__}"
