"""/docs (Swagger UI) and /redoc with their JavaScript, CSS and icon served by the app
itself, from the `fastapi-offline` package: they work offline and behind firewalls that
block CDNs, and no page of the app loads anything from elsewhere."""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_PATH = "/docs-assets"
_ASSETS = files("fastapi_offline") / "static"


def install_docs(app: FastAPI) -> None:
    """Call with a FastAPI made with `docs_url=None, redoc_url=None`."""
    app.mount(ASSETS_PATH, StaticFiles(directory=str(_ASSETS)), name="docs-assets")
    oauth2_redirect = "/docs/oauth2-redirect"

    def url(request: Request, path: str) -> str:
        return request.scope.get("root_path", "").rstrip("/") + path

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=url(request, app.openapi_url or "/openapi.json"),
            title=f"{app.title}: Swagger UI",
            oauth2_redirect_url=url(request, oauth2_redirect),
            swagger_js_url=url(request, f"{ASSETS_PATH}/swagger-ui-bundle.js"),
            swagger_css_url=url(request, f"{ASSETS_PATH}/swagger-ui.css"),
            swagger_favicon_url=url(request, f"{ASSETS_PATH}/favicon.png"),
            swagger_ui_parameters={"validatorUrl": None})

    @app.get(oauth2_redirect, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        return get_redoc_html(
            openapi_url=url(request, app.openapi_url or "/openapi.json"),
            title=f"{app.title}: ReDoc",
            redoc_js_url=url(request, f"{ASSETS_PATH}/redoc.standalone.js"),
            redoc_favicon_url=url(request, f"{ASSETS_PATH}/favicon.png"),
            with_google_fonts=False)
