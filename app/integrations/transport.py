"""What every client of an outside service shares: its error class and the
one rule that turns an HTTP exchange into a response or that error.

A timeout or a dropped connection is transient; an answer of 5xx, 408 or 429
is transient; any other 4xx is permanent (the request itself is wrong).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Self

import httpx

from app.core.errors import JuliaError


class ServiceError(JuliaError):
    """An outside service refused or failed a request."""

    service = "the service"

    def __init__(self, message: str, *, transient: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.transient = transient

    @classmethod
    def reason(cls, response: httpx.Response) -> str:
        """A short reason from an error body (never the request)."""
        return " ".join(response.text.split())[:200] or response.reason_phrase

    @classmethod
    def from_response(cls, response: httpx.Response, what: str) -> ServiceError:
        status = response.status_code
        return cls(
            f"{cls.service} answered {status} on {what}: {cls.reason(response)}",
            status=status,
            transient=retryable(status),
        )


def retryable(status: int) -> bool:
    """Whether an HTTP status is worth a retry."""
    return status >= 500 or status in (408, 429)


async def exchange(error: type[ServiceError], what: str, sending: Awaitable[httpx.Response]) -> httpx.Response:
    """The response to `sending`, or `error` for a timeout, a dropped connection or a 4xx/5xx."""
    try:
        response = await sending
    except httpx.TimeoutException as exc:
        raise error(f"{error.service} timed out on {what}", transient=True) from exc
    except httpx.TransportError as exc:
        raise error(f"{error.service} unreachable on {what}: {type(exc).__name__}", transient=True) from exc
    if response.status_code >= 400:
        raise error.from_response(response, what)
    return response


class ServiceClient:
    """A client over one `httpx.AsyncClient` (`self._http`); use `async with` or `aclose()`."""

    _http: httpx.AsyncClient

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()
