"""Stand-in for Voyage AI's `POST /v1/embeddings`, reached through VOYAGE_BASE_URL.

Embeddings are the local hash embedding of each input (so similar texts are
close), unless a test pins a text to a vector with `set_vector()` to define
semantic closeness exactly. Tests can also make the next calls fail.
"""

from __future__ import annotations

from typing import Any

from app.conversation.embeddings import DIMENSION, hash_embedding
from app.devkit.standins.server import RecordedRequest, Reply, StandinServer, json_reply

MAX_INPUTS = 1000
INPUT_TYPES = (None, "query", "document")
OUTPUT_DIMENSIONS = (256, 512, 1024, 2048)


def voyage_error(status: int, detail: str) -> Reply:
    """Reply in Voyage's error shape {"detail": ...}."""
    return json_reply(status, {"detail": detail})


class VoyageStandin(StandinServer):
    """Fake Voyage embeddings API; needs `Authorization: Bearer <any key>`."""

    def __init__(self, *, port: int = 0) -> None:
        super().__init__(port=port)
        self._vectors: dict[str, list[float]] = {}
        self._failures: list[int] = []

    # ------------------------------------------------------------------ scripting

    def set_vector(self, text: str, vector: list[float]) -> None:
        """Answer `vector` for exactly this input text (any input_type)."""
        with self._lock:
            self._vectors[text] = [float(x) for x in vector]

    def fail_next(self, status: int, times: int = 1) -> None:
        """The next `times` embedding calls answer `status` with a Voyage error body."""
        with self._lock:
            self._failures.extend([status] * times)

    def calls(self) -> list[dict[str, Any]]:
        """Bodies of the /v1/embeddings requests received, oldest first."""
        with self._lock:
            return [r.json for r in self.requests if r.path == "/v1/embeddings"]

    def reset(self) -> None:
        """Forget requests, pinned vectors and scripted failures."""
        with self._lock:
            super().reset()
            self._vectors.clear()
            self._failures.clear()

    # ------------------------------------------------------------------ routes

    def handle(self, request: RecordedRequest) -> Reply:
        if (request.method, request.path) != ("POST", "/v1/embeddings"):
            return voyage_error(404, f"Not found: {request.method} {request.path}")
        bearer = request.headers.get("authorization", "")
        if not bearer.startswith("Bearer ") or not bearer.removeprefix("Bearer ").strip():
            return voyage_error(401, "Provided API key is invalid.")
        with self._lock:
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            return voyage_error(failure, f"Stand-in failure {failure}")
        body = request.json if isinstance(request.json, dict) else {}
        texts = body.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            return voyage_error(400, "input: must be a string or a non-empty list of strings")
        if len(texts) > MAX_INPUTS:
            return voyage_error(400, f"input: at most {MAX_INPUTS} texts per request")
        if not isinstance(body.get("model"), str) or not body["model"]:
            return voyage_error(400, "model: Field required")
        if body.get("input_type") not in INPUT_TYPES:
            return voyage_error(400, "input_type: must be null, 'query' or 'document'")
        dimension = body.get("output_dimension") or DIMENSION
        if dimension not in OUTPUT_DIMENSIONS:
            return voyage_error(400, f"output_dimension: must be one of {OUTPUT_DIMENSIONS}")
        with self._lock:
            pinned = dict(self._vectors)
        data = [
            {"object": "embedding", "embedding": pinned.get(text) or hash_embedding(text, dimension), "index": i}
            for i, text in enumerate(texts)
        ]
        tokens = sum(max(1, len(text) // 4) for text in texts)
        return json_reply(
            200, {"object": "list", "data": data, "model": body["model"], "usage": {"total_tokens": tokens}}
        )
