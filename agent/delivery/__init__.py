"""Delivery: rendering, the dispatcher that drains the outbox, retry policy."""
