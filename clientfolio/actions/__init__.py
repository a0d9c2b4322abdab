"""actions stage (see DESIGN.md)."""
