"""`python -m agent` runs the command-line interface."""

from agent.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
