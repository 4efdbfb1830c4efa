"""The ASGI entry point for servers: `regionlock serve`, or `uvicorn regionlock.api.asgi:app
--no-proxy-headers` (settings from env). Without `--no-proxy-headers`, uvicorn itself would
rewrite the peer address from X-Forwarded-For for clients on 127.0.0.1, ahead of
REGIONLOCK_TRUSTED_PROXIES, which is meant to decide alone (`regionlock serve` turns it off)."""

from regionlock.api.app import create_app

app = create_app(freeze_after_startup=True)
