"""The Textual operator console (import name fluxkit_tui); built in the console issue."""
