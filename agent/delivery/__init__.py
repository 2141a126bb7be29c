"""Delivery: the dispatcher that drains the outbox, its retry policy and channel pauses."""
