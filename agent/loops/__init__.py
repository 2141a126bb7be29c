"""What the background loops (grouper, dispatcher) share: waking on new work, and backing off
from a failing step. Neither is a pipeline stage, so both stages may use it."""
