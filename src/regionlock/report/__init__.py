"""Reports for people: the investigation report as self-contained HTML (`report/html.py`)."""
