"""The ASGI entry point for servers: `uvicorn regionlock.api.asgi:app` (settings from env)."""

from regionlock.api.app import create_app

app = create_app(freeze_after_startup=True)
