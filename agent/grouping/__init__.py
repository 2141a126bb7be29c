"""Grouping: the stage between routing and the outbox that turns routed alerts into notifications
(groups, waits, repeats, inhibition and mute checks)."""
