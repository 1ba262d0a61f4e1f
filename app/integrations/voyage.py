"""Voyage AI embeddings client: `POST /v1/embeddings`.

Inputs are sent in batches of at most 128; results come back in input order.
Errors are split into transient (retry later: timeouts, 5xx, 429) and
permanent (other 4xx, malformed answers).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import httpx

from app.integrations.transport import ServiceClient, ServiceError, exchange

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.voyageai.com"
MAX_BATCH = 128

InputType = Literal["document", "query"]


class VoyageError(ServiceError):
    """Voyage refused or failed an embeddings request."""

    service = "Voyage"

    @classmethod
    def reason(cls, response: httpx.Response) -> str:
        """A short reason from Voyage's `{"detail": ...}` error body, never the request."""
        detail = _json(response).get("detail")
        text = detail if isinstance(detail, str) else response.text
        return " ".join(text.split())[:200] or response.reason_phrase


class VoyageClient(ServiceClient):
    """Thin async client over one httpx.AsyncClient; create once per process."""

    def __init__(
        self,
        api_key: str,
        model: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: float = 30.0,
    ) -> None:
        if not api_key or not model:
            raise ValueError("VoyageClient needs VOYAGE_API_KEY and a model name")
        self.model = model
        self._http = httpx.AsyncClient(
            base_url=(base_url or DEFAULT_BASE_URL).rstrip("/"),
            headers={"authorization": f"Bearer {api_key}"},
            timeout=timeout,
        )

    async def embed(self, texts: Sequence[str], input_type: InputType = "document") -> list[list[float]]:
        """One embedding per text, in order; raises VoyageError."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not one string")
        out: list[list[float]] = []
        for start in range(0, len(texts), MAX_BATCH):
            out.extend(await self._embed_batch(list(texts[start : start + MAX_BATCH]), input_type))
        return out

    async def _embed_batch(self, texts: list[str], input_type: InputType) -> list[list[float]]:
        body = {"input": texts, "model": self.model, "input_type": input_type}
        response = await exchange(VoyageError, "/v1/embeddings", self._http.post("/v1/embeddings", json=body))
        embeddings = _parse(response, len(texts))
        usage = _json(response).get("usage") or {}
        logger.debug(
            "embedded",
            extra={"action": "voyage_embedded", "inputs": len(texts), "tokens": usage.get("total_tokens")},
        )
        return embeddings


def _json(response: httpx.Response) -> dict:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _parse(response: httpx.Response, expected: int) -> list[list[float]]:
    """`data[].embedding` sorted by `data[].index`; VoyageError if the answer does not fit the request."""
    data = _json(response).get("data")
    if not isinstance(data, list) or len(data) != expected:
        got = len(data) if isinstance(data, list) else "no"
        raise VoyageError(f"Voyage returned {got} embeddings for {expected} inputs", transient=False)
    try:
        ordered = sorted(data, key=lambda item: int(item["index"]))
        embeddings = [[float(x) for x in item["embedding"]] for item in ordered]
    except (KeyError, TypeError, ValueError) as exc:
        raise VoyageError(f"Voyage returned a malformed embedding: {exc!r}", transient=False) from None
    if [int(item["index"]) for item in ordered] != list(range(expected)):
        raise VoyageError("Voyage returned embeddings with unexpected indexes", transient=False)
    return embeddings
