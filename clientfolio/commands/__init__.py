"""The `clientfolio` command, area by area (see common.py)."""
