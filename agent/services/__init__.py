"""Use cases outside the API (ingest, resolve; later send, cancel, acknowledge), so the API, the
CLI and a chat button call the same function."""
