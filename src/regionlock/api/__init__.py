"""The HTTP API (ASGI)."""
