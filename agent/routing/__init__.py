"""Routing: matchers, time intervals, the rule set and the router that applies it."""
