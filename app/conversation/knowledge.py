"""Julia's knowledge base: hybrid search for the reply job, and re-embedding.

The ranking lives in SQL (`public.buscar_conhecimento`: pgvector + Portuguese
full-text search, fused by reciprocal rank); this module embeds the text and
calls the named queries. A chunk is embedded as `document_text(titulo, conteudo)`,
the same text its `content_hash` covers.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psycopg
from psycopg.adapt import Dumper
from psycopg.pq import Format
from psycopg.rows import dict_row

from app.conversation.embeddings import Embedder
from app.core.errors import JuliaError
from app.integrations.voyage import VoyageError
from app.store.queries import queries

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]


class KnowledgeError(JuliaError):
    """Re-embedding the knowledge base could not make progress."""


@dataclass(frozen=True, kw_only=True)
class KnowledgeHit:
    """One chunk found for a question; ranks are 1-based, None when that side did not find it."""

    id: int
    fonte: str
    titulo: str
    conteudo: str
    tags: tuple[str, ...]
    score: float
    fts_rank: int | None
    vector_rank: int | None


@dataclass(frozen=True, kw_only=True)
class ReindexResult:
    """What a reindex did: `due` rows at the start, `embedded` stored, `stale` changed meanwhile."""

    model: str
    due: int
    embedded: int
    stale: int


def document_text(titulo: str, conteudo: str) -> str:
    """The text a chunk is embedded from (what its content_hash covers)."""
    return f"{titulo}\n{conteudo}"


def vector_literal(vector: Sequence[float]) -> str:
    """pgvector's text form, "[0.1,-0.2,...]", cast with `::extensions.vector` in the queries."""
    return "[" + ",".join(f"{x:.7g}" for x in vector) + "]"


@dataclass(frozen=True, slots=True)
class BinaryVector:
    """A vector sent to Postgres in pgvector's binary form (`VectorDumper`), for a
    `%(x)s::extensions.vector` parameter: 1024 floats written as text cost ~0.9 ms
    of Python a query, packed ~0.02 ms."""

    values: Sequence[float]


class VectorDumper(Dumper):
    """pgvector's binary input (vector_recv): dimension, a reserved zero, float4s, big-endian.
    Its oid is left unknown: Postgres takes the type from the query's cast."""

    format = Format.BINARY
    oid = 0

    def dump(self, obj: BinaryVector) -> bytes:
        n = len(obj.values)
        return struct.pack(f">HH{n}f", n, 0, *obj.values)


async def search_knowledge(
    conn: psycopg.AsyncConnection, embedder: Embedder, query: str, limit: int = 5
) -> list[KnowledgeHit]:
    """The best `limit` chunks for `query` (a doctor's question), best first.

    When the embedder fails (Voyage down), searches by keywords only and logs
    it: a reply is better with fewer facts than not at all.
    """
    embedding: BinaryVector | None = None
    if query.strip():
        try:
            embedding = BinaryVector((await embedder.embed([query], "query"))[0])
        except VoyageError as exc:
            logger.warning(
                "query not embedded; keyword search only",
                extra={"action": "knowledge_vector_skipped", "model": embedder.model, "transient": exc.transient},
            )
    async with conn.cursor(row_factory=dict_row) as cur:
        cur.adapters.register_dumper(BinaryVector, VectorDumper)
        await cur.execute(
            queries["search_knowledge"],
            {"query": query, "embedding": embedding, "model": embedder.model, "limit": limit},
        )
        rows = await cur.fetchall()
    return [KnowledgeHit(**{**row, "tags": tuple(row["tags"])}) for row in rows]


async def count_due(conn: psycopg.AsyncConnection, model: str) -> int:
    """How many chunks need (re-)embedding with `model`."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(queries["count_knowledge_to_embed"], {"model": model})
        row = await cur.fetchone()
    return row["due"] if row else 0


async def reindex(
    conn: psycopg.AsyncConnection,
    embedder: Embedder,
    *,
    batch_size: int = 64,
    progress: ProgressCallback | None = None,
) -> ReindexResult:
    """Embed every chunk that is missing, stale or of another model, `batch_size` at a time.

    `progress(done, total)` is called after each batch. A chunk edited while its
    embedding was computed is not stored (it stays due, and is picked up again).
    `conn` must be in autocommit mode. Raises VoyageError (the batches stored so
    far stay stored), KnowledgeError or ValueError.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if not conn.autocommit:
        raise ValueError("reindex needs an autocommit connection (each batch commits on its own)")
    due = total = await count_due(conn, embedder.model)
    done = embedded = stale = 0
    seen: set[tuple[int, str]] = set()
    if progress:
        progress(done, total)
    while True:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(queries["knowledge_to_embed"], {"model": embedder.model, "limit": batch_size})
            rows = await cur.fetchall()
        if not rows:
            break
        batch = {(row["id"], row["content_hash"]) for row in rows}
        if batch <= seen:
            raise KnowledgeError(f"chunks {sorted(i for i, _ in batch)} stay due after being embedded")
        seen |= batch
        vectors = await embedder.embed([document_text(row["titulo"], row["conteudo"]) for row in rows], "document")
        async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            for row, vector in zip(rows, vectors, strict=True):
                await cur.execute(
                    queries["store_embedding"],
                    {
                        "id": row["id"],
                        "model": embedder.model,
                        "hash": row["content_hash"],
                        "embedding": vector_literal(vector),
                    },
                )
                stored = await cur.fetchone()
                if stored and stored["stored"]:
                    embedded += 1
                else:
                    stale += 1
        done += len(rows)
        total = max(total, done)
        if progress:
            progress(done, total)
    logger.info(
        "knowledge reindexed",
        extra={"action": "knowledge_reindexed", "model": embedder.model, "embedded": embedded, "stale": stale},
    )
    return ReindexResult(model=embedder.model, due=due, embedded=embedded, stale=stale)
