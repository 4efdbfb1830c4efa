"""/docs and /redoc work without internet: every script, style sheet and icon they reference
is served by the app itself."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from regionlock.api.app import create_app
from regionlock.api.docs_ui import install_docs
from regionlock.geo import Locator
from regionlock.settings import Settings

# What each page must load, by the global its script defines (the right file, not just a file).
SCRIPT_GLOBALS = {"/docs": "SwaggerUIBundle", "/redoc": "Redoc"}


class _Refs(HTMLParser):
    """Every URL a page's tags reference (src, href, and ReDoc's spec-url)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [v for k, v in attrs if k in ("src", "href", "spec-url") and v is not None]


def page_refs(html: str) -> list[str]:
    parser = _Refs()
    parser.feed(html)
    # Swagger UI gets the schema's URL in its inline script, not in an attribute.
    return parser.urls + re.findall(r"\burl: '([^']*)'", html)


def assert_docs_offline(client: TestClient, prefix: str = "") -> None:
    """`prefix`: the root path a proxy mounts the app under; page URLs must carry it."""
    for page, script_global in SCRIPT_GLOBALS.items():
        response = client.get(prefix + page)
        assert response.status_code == 200, page
        html = response.text
        assert "http://" not in html and "https://" not in html, page
        refs = page_refs(html)
        assert len(refs) >= 3, (page, refs)  # the script, the favicon, the schema (+ css)
        loaded = []
        for url in refs:
            # Same origin: an absolute path, not a scheme-relative "//host/...".
            assert url.startswith(prefix + "/") and not url.startswith("//"), (page, url)
            asset = client.get(url)
            assert asset.status_code == 200, (page, url)
            if url.endswith("/openapi.json"):
                assert asset.json()["openapi"].startswith("3."), url
            else:
                assert len(asset.content) > 1000, (page, url)  # the real file, not a stub
                loaded.append(asset.text if url.endswith((".js", ".css")) else "")
        assert any(script_global in body for body in loaded), page


def minimal_app() -> FastAPI:
    app = FastAPI(title="t", docs_url=None, redoc_url=None)

    @app.get("/ping")
    def ping() -> dict[str, bool]:
        return {"ok": True}

    install_docs(app)
    return app


def test_docs_and_redoc_load_only_local_files() -> None:
    with TestClient(minimal_app()) as client:
        assert_docs_offline(client)
        swagger = client.get("/docs").text
        assert "/docs-static/swagger-ui.css" in swagger
        assert '"validatorUrl": null' in swagger  # no badge fetched from swagger.io
        redirect = client.get("/docs/oauth2-redirect")
        assert redirect.status_code == 200 and "swaggerUIRedirectOauth2" in redirect.text
        assert "http://" not in redirect.text and "https://" not in redirect.text


def test_docs_routes_stay_out_of_the_schema() -> None:
    with TestClient(minimal_app()) as client:
        assert list(client.get("/openapi.json").json()["paths"]) == ["/ping"]


def test_pages_follow_the_root_path() -> None:
    with TestClient(minimal_app(), root_path="/api") as client:
        assert_docs_offline(client, prefix="/api")


def test_refuses_an_app_that_already_has_the_cdn_pages() -> None:
    with pytest.raises(ValueError, match="docs_url=None"):
        install_docs(FastAPI())


# Needs the app factory (api/app.py) to build FastAPI(..., docs_url=None, redoc_url=None) and
# call install_docs(app); without that, /docs is FastAPI's CDN page and this test fails.
def test_the_real_app_serves_its_docs_offline(tmp_path: Path, locator: Locator) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'api.db'}"), locator=locator)
    with TestClient(app) as client:
        assert_docs_offline(client)
        paths = client.get("/openapi.json").json()["paths"]
        assert not any(p.startswith(("/docs", "/redoc")) for p in paths)
