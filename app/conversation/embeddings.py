"""Text embeddings for the knowledge base: Voyage in production, a local hash embedder offline.

Every embedder has a `model` name (stored beside each vector, so vectors of
different models are never compared) and a `dimension` (the column is
`vector(1024)`). The local embedder needs no network and no model download:
it hashes words and character trigrams into 1024 dimensions, so texts that
share words or word pieces are close. It is deterministic across processes
and machines (blake2b, not Python's salted `hash()`).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import unicodedata
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Protocol

from app.core.config import Settings
from app.integrations.voyage import DEFAULT_BASE_URL, InputType, VoyageClient, VoyageError

logger = logging.getLogger(__name__)

DIMENSION = 1024
LOCAL_MODEL = "local-hash-1024"
WORD_WEIGHT = 1.0
TRIGRAM_WEIGHT = 0.3

# Portuguese function words: they say nothing about what a chunk is about.
_STOPWORDS_TEXT = (
    "a ao aos as com como da das de do dos e em entre essa esse eu isso na nas no nos "
    "o os ou para pela pelo por pra que se sem seu sua um uma voce"
)
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())
_WORD = re.compile(r"[a-z0-9]+")


class Embedder(Protocol):
    """Turns texts into vectors of `dimension` floats, tagged with `model`."""

    model: str
    dimension: int

    async def embed(self, texts: Sequence[str], input_type: InputType = "document") -> list[list[float]]:
        """One vector per text, in order; "query" for questions, "document" for chunks."""
        ...

    async def aclose(self) -> None: ...


# ------------------------------------------------------------------
# Local hash embedding (pure functions)
# ------------------------------------------------------------------


def normalize(text: str) -> str:
    """Lower-case text without accents ("Plantão" -> "plantao")."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def features(text: str) -> list[tuple[str, float]]:
    """Weighted features of `text`: its content words and their character trigrams."""
    out: list[tuple[str, float]] = []
    for word in _WORD.findall(normalize(text)):
        if word in STOPWORDS:
            continue
        out.append(("w:" + word, WORD_WEIGHT))
        padded = f" {word} "
        out.extend(("t:" + padded[i : i + 3], TRIGRAM_WEIGHT) for i in range(len(padded) - 2))
    return out


@lru_cache(maxsize=1 << 17)
def _slot(feature: str, dimension: int) -> tuple[int, float]:
    """Stable (index, sign) of a feature; the sign keeps collisions from adding up."""
    digest = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "big")
    return digest % dimension, (1.0 if digest >> 63 else -1.0)


def hash_embedding(text: str, dimension: int = DIMENSION) -> list[float]:
    """The local embedding of `text`: hashed features, L2-normalized.

    Text without content words (empty, stop words only) maps to one fixed unit
    vector, never to zeros (a zero vector has no cosine distance).
    """
    if dimension < 1:
        raise ValueError(f"dimension must be positive, got {dimension}")
    vector = [0.0] * dimension
    for feature, weight in features(text) or [("<empty>", 1.0)]:
        index, sign = _slot(feature, dimension)
        vector[index] += sign * weight
    norm = math.sqrt(sum(x * x for x in vector))
    if norm == 0.0:  # every feature cancelled out
        index, _ = _slot("<empty>", dimension)
        vector[index] = norm = 1.0
    return [x / norm for x in vector]


def cosine_similarity(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity of two equal-length vectors (0.0 when either is all zeros)."""
    if len(a) != len(b):
        raise ValueError(f"vectors differ in length: {len(a)} and {len(b)}")
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norms if norms else 0.0


# ------------------------------------------------------------------
# Embedders
# ------------------------------------------------------------------


class LocalEmbedder:
    """Offline, deterministic embedder (`local-hash-1024`); the same for documents and queries."""

    model = LOCAL_MODEL
    dimension = DIMENSION

    async def embed(self, texts: Sequence[str], input_type: InputType = "document") -> list[list[float]]:
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not one string")
        return [hash_embedding(text, self.dimension) for text in texts]

    async def aclose(self) -> None:
        return None


class VoyageEmbedder:
    """Voyage embeddings (e.g. voyage-3.5-lite, 1024 dimensions); raises VoyageError."""

    dimension = DIMENSION

    def __init__(self, client: VoyageClient) -> None:
        self._client = client
        self.model = client.model

    async def embed(self, texts: Sequence[str], input_type: InputType = "document") -> list[list[float]]:
        vectors = await self._client.embed(texts, input_type)
        for vector in vectors:
            if len(vector) != self.dimension:
                raise VoyageError(
                    f"Voyage model {self.model} returned {len(vector)} dimensions, expected {self.dimension}",
                    transient=False,
                )
        return vectors

    async def aclose(self) -> None:
        await self._client.aclose()


def build_embedder(settings: Settings, env: Mapping[str, str] | None = None) -> Embedder:
    """Voyage when VOYAGE_API_KEY is set, else the local hash embedder.

    VOYAGE_BASE_URL (read here, not in Settings; default https://api.voyageai.com)
    points the client elsewhere, e.g. at the stand-in in tests.
    """
    env = os.environ if env is None else env
    if settings.voyage_api_key:
        base_url = env.get("VOYAGE_BASE_URL", "").strip() or DEFAULT_BASE_URL
        return VoyageEmbedder(VoyageClient(settings.voyage_api_key, settings.voyage_model, base_url))
    if settings.app_env not in ("dev", "test"):
        logger.warning(
            "VOYAGE_API_KEY is not set: knowledge search uses the local hash embedder",
            extra={"action": "embedder_local", "model": LOCAL_MODEL},
        )
    return LocalEmbedder()
