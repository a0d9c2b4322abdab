"""scores stage (see DESIGN.md)."""
