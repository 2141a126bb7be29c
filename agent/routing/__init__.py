"""Routing (pure): matchers, time intervals, the rule set, its loader and the router."""
