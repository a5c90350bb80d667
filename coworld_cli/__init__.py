"""The `coworld` command line."""
