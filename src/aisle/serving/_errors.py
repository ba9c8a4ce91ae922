"""Errors at the HTTP edge: the one place where aisle's error tree becomes status codes."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from aisle.errors import (
    AisleError,
    ConfigError,
    DataError,
    MissingDependencyError,
    NotFoundError,
    ServiceError,
    StateError,
)

__all__ = ["http_status_for", "install_error_handlers"]

log = logging.getLogger("aisle.serving")


class AdminAuthError(AisleError):
    """The admin token is missing or wrong."""


def http_status_for(exc: BaseException) -> int:
    """The HTTP status of an exception raised by domain code."""
    if isinstance(exc, AdminAuthError):
        return 401
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ConfigError):
        return 422
    if isinstance(exc, DataError):
        return 422
    if isinstance(exc, StateError):
        return 409
    if isinstance(exc, ServiceError | MissingDependencyError):
        return 503
    return 500


def install_error_handlers(app: FastAPI) -> None:
    """Map domain errors to JSON answers; anything else is a 500 without a stack trace."""

    async def domain(request: Request, exc: Exception) -> JSONResponse:
        status = http_status_for(exc)
        return JSONResponse({"error": type(exc).__name__, "detail": str(exc)}, status_code=status)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return JSONResponse({"error": "InternalError", "detail": "internal error; see the service log"}, status_code=500)

    app.add_exception_handler(AisleError, domain)
    app.add_exception_handler(Exception, unexpected)
