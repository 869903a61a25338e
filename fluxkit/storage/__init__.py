"""Storage backends (recording issue)."""
