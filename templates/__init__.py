"""Files that `fraiseql migrate init` and `create` write (package data)."""
