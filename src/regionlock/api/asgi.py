"""The ASGI entry point for servers: `regionlock serve`, or `uvicorn regionlock.api.asgi:app
--no-proxy-headers` (settings from env). Without `--no-proxy-headers`, uvicorn itself would
rewrite the peer address from X-Forwarded-For for clients on 127.0.0.1, ahead of
REGIONLOCK_TRUSTED_PROXIES, which is meant to decide alone (`regionlock serve` turns it off)."""

from regionlock import logs
from regionlock.api.app import create_app
from regionlock.settings import Settings

settings = Settings.from_env()
logs.configure(settings)
app = create_app(settings, freeze_after_startup=True)
