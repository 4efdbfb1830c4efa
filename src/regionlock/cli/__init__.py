"""The `regionlock` command line."""
