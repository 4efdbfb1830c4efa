"""Swagger UI at `/docs` and ReDoc at `/redoc`, served from files installed with the package.

FastAPI's default pages load their scripts from a CDN and are blank without internet. The
`fastapi-offline` package ships the swagger-ui and redoc dist files (docs/dependencies.md);
they are served under `/docs-static/` and the pages are FastAPI's own, pointed at them.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
STATIC_URL = "/docs-static"
# The dist files' directory inside the installed `fastapi-offline` package.
STATIC_PACKAGE = ("fastapi_offline", "static")


def install_docs(app: FastAPI) -> None:
    """Add `/docs` (with its OAuth2 redirect page) and `/redoc` to an app built with
    `docs_url=None, redoc_url=None`, every script, style sheet and icon served by the app."""
    if app.docs_url is not None or app.redoc_url is not None:
        # FastAPI has already added its CDN pages at those paths, and they would win.
        raise ValueError("build the app with FastAPI(docs_url=None, redoc_url=None)")
    openapi_url = app.openapi_url
    if openapi_url is None:
        raise ValueError("the docs pages need the app's OpenAPI schema (openapi_url is None)")
    oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url

    # StaticFiles checks at construction that the package and its directory exist.
    app.mount(STATIC_URL, StaticFiles(packages=[STATIC_PACKAGE]), name="docs-static")

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_URL}/favicon.png",
            oauth2_redirect_url=root + oauth2_redirect_url if oauth2_redirect_url else None,
            init_oauth=app.swagger_ui_init_oauth,
            # No validator badge: it would send the schema's URL to swagger.io.
            swagger_ui_parameters={"validatorUrl": None, **(app.swagger_ui_parameters or {})},
        )

    if oauth2_redirect_url:

        @app.get(oauth2_redirect_url, include_in_schema=False)
        async def swagger_ui_oauth2_redirect() -> HTMLResponse:
            return get_swagger_ui_oauth2_redirect_html()

    @app.get(REDOC_URL, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{STATIC_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{STATIC_URL}/favicon.png",
            with_google_fonts=False,
        )
