"""Every error the API returns, as one JSON problem shape (RFC 9457), mapped in one place.

Nothing here ever sends a stack trace.  An unknown key, a revoked key and a malformed key are
the same 401; a customer, export or experiment that is not in the caller's workspace is the
same 404 whether it exists elsewhere or nowhere.
"""

from __future__ import annotations

import logging
import secrets

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from clientfolio.core.errors import ClientfolioError

log = logging.getLogger("clientfolio.service")
TITLES = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found", 405: "Method not allowed",
          409: "Conflict", 413: "Content too large", 415: "Unsupported media type", 422: "Unprocessable content",
          429: "Too many requests", 500: "Internal server error"}


class ApiError(ClientfolioError):
    """An error with its HTTP status and optional headers (e.g. Retry-After)."""

    status = 400

    def __init__(self, detail: str, status: int | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        self.headers = headers or {}


class Unauthorized(ApiError):
    status = 401

    def __init__(self) -> None:
        super().__init__("a valid API key is needed: send 'Authorization: Bearer cf_...' "
                         "(`clientfolio key create` makes one)", headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class BodyTooLarge(Exception):
    """Raised while a request body streams past the size limit (answered 413 by limits.BodyLimit)."""


def problem(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """A JSON problem response."""
    body = {"type": "about:blank", "title": TITLES.get(status, "Error"), "status": status, "detail": detail}
    return JSONResponse(body, status_code=status, headers=headers, media_type="application/problem+json")


def install(app: FastAPI) -> None:
    """Map every exception to a problem response (the one exception -> HTTP mapping of the service)."""

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> JSONResponse:
        return problem(exc.status, exc.detail, exc.headers)

    @app.exception_handler(ClientfolioError)
    async def _library(request: Request, exc: ClientfolioError) -> JSONResponse:
        from clientfolio.live.portfolio import LiveError

        status = 409 if isinstance(exc, LiveError) and "no fitted portfolio" in str(exc) else 400
        return problem(status, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors()[:20]:
            where = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "request"
            parts.append(f"{where}: {e.get('msg', 'invalid')}")
        return problem(422, "; ".join(parts) or "the request is not valid")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else TITLES.get(exc.status_code, "Error")
        return problem(exc.status_code, detail, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, BodyTooLarge):  # the body limit, met while a route read the body: no error to log
            return problem(413, "the request body is larger than this service accepts")
        ref = secrets.token_hex(4)
        log.exception("unexpected error %s on %s %s", ref, request.method, request.url.path)
        return problem(500, f"the service hit an unexpected error (reference {ref}, in the service log); "
                            "nothing was half-written: every change is one transaction")
