"""segments stage (see DESIGN.md)."""
