"""Delivery: the dispatcher that drains the outbox, retry policy, back-off."""
