"""The pure core of regionlock: values and decisions, no I/O, no frameworks."""
