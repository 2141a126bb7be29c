"""Inbound payloads -> alerts: pure parsers for Alertmanager, Grafana and generic JSON."""

from agent.ingest.common import IngestError, parse_time, str_map

__all__ = ["IngestError", "parse_time", "str_map"]
