"""Knowledge base on a real database: reindexing (Voyage stand-in, local embedder,
`julia kb reindex`), hybrid search ranking, model separation, staleness."""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator

import psycopg
import pytest

from app.conversation.embeddings import LOCAL_MODEL, LocalEmbedder, VoyageEmbedder, build_embedder, hash_embedding
from app.conversation.knowledge import (
    BinaryVector,
    KnowledgeHit,
    VectorDumper,
    document_text,
    reindex,
    search_knowledge,
    vector_literal,
)
from app.core.config import load_settings
from app.core.errors import InvalidInput, NotFound
from app.devkit.standins.voyage import VoyageStandin
from app.store.errors import wrap_db_errors
from app.store.queries import queries

VOYAGE_KEY = "test-voyage-key"
VOYAGE_MODEL = "voyage-3.5-lite"

# (titulo, conteudo); the first two are the ones the ranking tests look for.
ADIANTAMENTO = (
    "Adiantamento de pagamento",
    "Você pode pedir adiantamento de até 70% do valor do plantão depois que o coordenador confirmar a escala.",
)
LIBERACAO = (
    "Liberação antecipada",
    "O valor pode ser liberado antes do fechamento mensal, mediante solicitação ao financeiro.",
)
OTHERS = [
    ("Documentos para cadastro", "Envie CRM ativo, RG, CPF, comprovante de residência e diploma para o cadastro."),
    ("Plantão noturno", "Os plantões noturnos duram 12 horas, das 19h às 7h, com direito a repouso."),
    ("Hospitais parceiros", "Trabalhamos com o Hospital São Luiz, o Albert Einstein e a Santa Casa de São Paulo."),
    ("Estacionamento", "Médicos plantonistas têm vaga garantida no estacionamento coberto do hospital."),
    ("Troca de escala", "Trocas precisam ser avisadas com 48 horas de antecedência pelo grupo da coordenação."),
    ("Cancelamento", "Cancelar com menos de 24 horas pode suspender novas ofertas por um mês."),
    ("Nota fiscal", "Quem recebe como pessoa jurídica emite nota fiscal até o dia 5 do mês seguinte."),
    ("Uniforme", "Use jaleco branco e crachá da empresa; o pijama cirúrgico é fornecido no centro cirúrgico."),
]


def unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector]


def random_unit(seed: int) -> list[float]:
    rng = random.Random(seed)
    return unit([rng.gauss(0, 1) for _ in range(1024)])


@pytest.fixture
def voyage() -> Iterator[VoyageStandin]:
    with VoyageStandin() as server:
        yield server


@pytest.fixture
async def aconn(database_url: str) -> AsyncIterator[psycopg.AsyncConnection]:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def add_chunk(db: psycopg.Connection) -> Callable[..., int]:
    """Insert one knowledge chunk; returns its id."""

    def add(titulo: str, conteudo: str, fonte: str = "faq", tags: tuple[str, ...] = ()) -> int:
        row = db.execute(
            "INSERT INTO public.conhecimento_julia (fonte, titulo, conteudo, tags)"
            " VALUES (%s, %s, %s, %s) RETURNING id",
            (fonte, titulo, conteudo, list(tags)),
        ).fetchone()
        return row["id"]

    return add


@pytest.fixture
def chunks(add_chunk: Callable[..., int]) -> dict[str, int]:
    """The ten chunks above, by titulo."""
    return {titulo: add_chunk(titulo, conteudo) for titulo, conteudo in [ADIANTAMENTO, LIBERACAO, *OTHERS]}


def voyage_env(database_url: str, voyage: VoyageStandin) -> dict[str, str]:
    return {
        "APP_ENV": "test",
        "DATABASE_URL": database_url,
        "VOYAGE_API_KEY": VOYAGE_KEY,
        "VOYAGE_MODEL": VOYAGE_MODEL,
        "VOYAGE_BASE_URL": voyage.url,
    }


def due(db: psycopg.Connection, model: str) -> list[int]:
    return [r["id"] for r in db.execute(queries["knowledge_to_embed"], {"model": model, "limit": None})]


def search_sql(db: psycopg.Connection, query: str | None, vector: list[float] | None, model: str, limit: int = 10):
    embedding = vector_literal(vector) if vector is not None else None
    params = {"query": query, "embedding": embedding, "model": model, "limit": limit}
    return db.execute(queries["search_knowledge"], params).fetchall()


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("VOYAGE_")}
    return subprocess.run(
        [sys.executable, "-m", "app.ops.cli", "kb", "reindex", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# --- reindex + hybrid ranking ---------------------------------------------------------


async def test_voyage_reindex_and_hybrid_search_ranks_keyword_and_meaning_first(
    database_url, db, aconn, voyage, chunks
):
    query_vector = random_unit(1)
    voyage.set_vector("adiantamento", query_vector)
    # Close in meaning to the question but sharing none of its words.
    noise = random_unit(2)
    voyage.set_vector(document_text(*LIBERACAO), unit([q + 0.2 * n for q, n in zip(query_vector, noise, strict=True)]))

    embedder = build_embedder(load_settings("cli", voyage_env(database_url, voyage)), voyage_env(database_url, voyage))
    assert isinstance(embedder, VoyageEmbedder)
    seen: list[tuple[int, int]] = []
    try:
        result = await reindex(aconn, embedder, batch_size=4, progress=lambda done, total: seen.append((done, total)))
        hits = await search_knowledge(aconn, embedder, "adiantamento", limit=5)
    finally:
        await embedder.aclose()

    assert (result.model, result.due, result.embedded, result.stale) == (VOYAGE_MODEL, 10, 10, 0)
    assert seen == [(0, 10), (4, 10), (8, 10), (10, 10)]
    calls = voyage.calls()
    assert [len(c["input"]) for c in calls] == [4, 4, 2, 1]
    assert [c["input_type"] for c in calls] == ["document"] * 3 + ["query"]
    assert {c["model"] for c in calls} == {VOYAGE_MODEL}
    assert voyage.requests[0].headers["authorization"] == f"Bearer {VOYAGE_KEY}"
    stored = db.execute(
        "SELECT count(*) AS n FROM public.conhecimento_julia"
        " WHERE embedding_model = %s AND embedded_hash = content_hash",
        (VOYAGE_MODEL,),
    ).fetchone()
    assert stored["n"] == 10

    assert all(isinstance(hit, KnowledgeHit) for hit in hits)
    by_id = {hit.id: hit for hit in hits}
    keyword, meaning = by_id[chunks[ADIANTAMENTO[0]]], by_id[chunks[LIBERACAO[0]]]
    assert keyword.fts_rank == 1 and keyword.vector_rank is not None and keyword.vector_rank > 1
    assert meaning.vector_rank == 1 and meaning.fts_rank is None
    assert {hits[0].id, hits[1].id} == {keyword.id, meaning.id}
    assert all(hit.fts_rank is None and hit.score < meaning.score for hit in hits[2:])
    assert hits[0].score == pytest.approx(1 / 61 + 1 / (60 + keyword.vector_rank))
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


async def test_local_reindex_and_search(db, aconn, chunks):
    embedder = LocalEmbedder()
    result = await reindex(aconn, embedder)
    assert (result.model, result.embedded) == (LOCAL_MODEL, 10)
    assert (await reindex(aconn, embedder)).embedded == 0

    hits = await search_knowledge(aconn, embedder, "quais documentos preciso mandar pro cadastro?", limit=3)
    assert hits[0].titulo == "Documentos para cadastro"
    assert hits[0].fts_rank == 1 and hits[0].vector_rank == 1
    # Accents do not matter on either side.
    hits = await search_knowledge(aconn, embedder, "plantao noturno", limit=3)
    assert hits[0].titulo == "Plantão noturno"
    assert (hits[0].fts_rank, hits[0].vector_rank) == (1, 1)
    assert hits[0].tags == ()


async def test_a_query_vector_sent_in_binary_is_the_vector_its_text_form_gives(db, aconn, chunks):
    # The reply's search sends its query vector packed (VectorDumper), the rest as text: the same vector
    # (to float4 precision) and the same ranking.
    await reindex(aconn, LocalEmbedder())
    vector = hash_embedding("adiantamento do plantão noturno")
    async with aconn.cursor() as cur:
        cur.adapters.register_dumper(BinaryVector, VectorDumper)
        for _ in range(7):  # past psycopg's prepare threshold too
            await cur.execute(
                "SELECT %(b)s::extensions.vector::real[] AS b, %(t)s::extensions.vector::real[] AS t,"
                " %(b)s::extensions.vector OPERATOR(extensions.<=>) %(t)s::extensions.vector",
                {"b": BinaryVector(vector), "t": vector_literal(vector)},
            )
            packed, written, distance = await cur.fetchone()
            # Packed is the nearest float4, the text the nearest to its 7 digits: at most one float4 step apart.
            assert packed == pytest.approx(written, rel=1e-6, abs=1e-12)
            assert packed == pytest.approx(vector, rel=1e-6, abs=1e-12)
            assert distance == pytest.approx(0.0, abs=1e-6)
        await cur.execute("SELECT %s::extensions.vector::text", (BinaryVector([0.5, -0.25, 0.0]),))
        assert (await cur.fetchone())[0] == "[0.5,-0.25,0]"
    hits = await search_knowledge(aconn, LocalEmbedder(), "adiantamento do plantão noturno", limit=10)
    by_text = search_sql(db, "adiantamento do plantão noturno", vector, LOCAL_MODEL)
    assert [(h.id, h.fts_rank, h.vector_rank) for h in hits] == [
        (r["id"], r["fts_rank"], r["vector_rank"]) for r in by_text
    ]


def test_full_text_matches_any_word_and_prefers_all_words(db, chunks):
    # No chunk has every word; each word still finds its chunk.
    rows = search_sql(db, "adiantamento estacionamento uniforme", None, LOCAL_MODEL)
    assert {r["titulo"] for r in rows} == {"Adiantamento de pagamento", "Estacionamento", "Uniforme"}
    assert all(r["vector_rank"] is None for r in rows)
    # A chunk with all the words ranks above chunks with some of them.
    rows = search_sql(db, "nota fiscal pessoa jurídica hospital", None, LOCAL_MODEL)
    assert rows[0]["titulo"] == "Nota fiscal"
    # Stop words only, or nothing at all: no full-text side, no error.
    assert search_sql(db, "de que o", None, LOCAL_MODEL) == []
    assert search_sql(db, None, None, LOCAL_MODEL) == []


async def test_text_side_takes_its_candidates_rarest_words_first_and_a_text_only_match_is_fused(db, aconn, add_chunk):
    # 300 chunks share the common words; one has the rare one. With statistics, the full-text side
    # takes tiers of chunks having most of the rarest lexemes, not every chunk sharing a word.
    for n in range(300):
        add_chunk(f"Plantão {n}", f"Plantão no hospital número {n}, com escala de plantão e passagem de plantão.")
    target = add_chunk("Ressonância", "O hospital tem ressonância magnética para o plantão de imagem.")
    await reindex(aconn, LocalEmbedder())
    db.execute("ANALYZE public.conhecimento_julia")
    question = "plantão no hospital com ressonância e tomografia"
    lexemes = db.execute("SELECT public._knowledge_lexemes(%s) AS l", (question,)).fetchone()["l"]
    assert lexemes[-2:] == ["hospital", "planta"] or lexemes[-2:] == ["planta", "hospital"]  # the commonest last
    assert {lexemes[0], lexemes[1]} == {"ressonanc", "tomograf"}  # in no chunk, or in one

    text_side = db.execute("SELECT id, rank FROM public._matching_knowledge(%s, 40)", (question,)).fetchall()
    assert text_side[0] == {"id": target, "rank": 1}  # 3 of the 4 words: the first tier that finds anything
    assert len(text_side) == 40

    # Fused with a vector side that prefers the common chunks, the text-only match is still found.
    common = hash_embedding(document_text("Plantão 7", "Plantão no hospital número 7, com escala de plantão."))
    rows = search_sql(db, question, common, LOCAL_MODEL, limit=100)
    by_id = {r["id"]: r for r in rows}
    assert by_id[target]["fts_rank"] == 1
    assert 40 < len(rows) <= 80  # only the 40 + 40 candidates are fused
    assert any(r["fts_rank"] is None for r in rows) and any(r["vector_rank"] is None for r in rows)


@pytest.mark.parametrize("count", [1, 2, 3, 6])
def test_each_tier_query_matches_exactly_the_texts_with_at_least_that_many_of_its_lexemes(db, count):
    # Every subset of the lexemes as a document: tier m must match those holding m or more of them.
    lexemes = ["a", "b", "c", "d", "e", "f"][:count]
    operands = db.execute("SELECT public._tsquery_operands(%s) AS o", (lexemes,)).fetchone()["o"]
    tiers = db.execute("SELECT public._at_least_tsqueries(%s)::text[] AS t", (operands,)).fetchone()["t"]
    assert len(tiers) == count
    for mask in range(1 << count):
        words = [w for i, w in enumerate(lexemes) if mask >> i & 1] + ["z"]
        matches = db.execute(
            "SELECT array_agg(%s::tsvector @@ t::tsquery ORDER BY n) AS m"
            " FROM unnest(%s::text[]) WITH ORDINALITY AS q(t, n)",
            (" ".join(words), tiers),
        ).fetchone()["m"]
        assert matches == [len(words) - 1 >= m for m in range(1, count + 1)], words


def test_search_rejects_bad_arguments(db):
    with pytest.raises(InvalidInput, match="limit must be between 1 and 100"), wrap_db_errors():
        search_sql(db, "plantão", None, LOCAL_MODEL, limit=0)
    with pytest.raises(InvalidInput, match="needs its model name"), wrap_db_errors():
        db.execute(queries["search_knowledge"], {"query": "x", "embedding": "[1,0]", "model": None, "limit": 5})


async def test_search_falls_back_to_keywords_when_voyage_fails(database_url, aconn, voyage, chunks):
    env = voyage_env(database_url, voyage)
    embedder = build_embedder(load_settings("cli", env), env)
    try:
        await reindex(aconn, embedder)
        voyage.fail_next(503)
        hits = await search_knowledge(aconn, embedder, "adiantamento", limit=5)
    finally:
        await embedder.aclose()
    assert [(h.titulo, h.fts_rank, h.vector_rank) for h in hits] == [("Adiantamento de pagamento", 1, None)]


# --- models and staleness -------------------------------------------------------------


@pytest.mark.parametrize("scan", ["hnsw", "seq"])
async def test_vector_side_only_compares_the_same_model(db, aconn, chunks, scan):
    await reindex(aconn, LocalEmbedder())
    target = chunks["Estacionamento"]
    other = random_unit(3)
    # Nine chunks now carry another model's vectors, one of them identical to the question's.
    for titulo, chunk_id in chunks.items():
        if titulo != "Uniforme":
            row = db.execute("SELECT content_hash FROM public.conhecimento_julia WHERE id = %s", (chunk_id,)).fetchone()
            vector = other if chunk_id == target else random_unit(chunk_id + 100)
            params = {"id": chunk_id, "model": "other-model", "hash": row["content_hash"]}
            stored = db.execute(queries["store_embedding"], {**params, "embedding": vector_literal(vector)}).fetchone()
            assert stored["stored"] is True
    if scan == "seq":  # otherwise the HNSW index path, with its model filter
        db.execute("SET enable_indexscan = off")

    rows = search_sql(db, None, other, LOCAL_MODEL)
    assert [(r["titulo"], r["vector_rank"]) for r in rows] == [("Uniforme", 1)]
    rows = search_sql(db, None, other, "other-model")
    assert len(rows) == 9 and rows[0]["id"] == target and rows[0]["vector_rank"] == 1
    assert chunks["Uniforme"] not in {r["id"] for r in rows}

    assert due(db, LOCAL_MODEL) == sorted(i for t, i in chunks.items() if t != "Uniforme")
    assert due(db, "other-model") == [chunks["Uniforme"]]


def test_vector_side_walks_past_another_models_rows_until_it_has_its_40(db):
    # More rows than the HNSW search list (120), the 200 nearest of another model: the first pass
    # (no iterative scan) finds none of LOCAL_MODEL's 60, the second walks the graph on to 40.
    question = random_unit(1)
    noise = random.Random(2)
    near = [unit([x + noise.gauss(0, 0.01) for x in question]) for _ in range(200)]
    rows = [(f"perto {n}", v, "other-model") for n, v in enumerate(near)]
    rows += [(f"longe {n}", random_unit(1000 + n), LOCAL_MODEL) for n in range(60)]
    with db.cursor() as cur:
        cur.executemany(
            "INSERT INTO public.conhecimento_julia (fonte, titulo, conteudo, embedding, embedding_model, embedded_hash)"
            " VALUES ('faq', %s, 'x', %s::extensions.vector, %s, md5(%s || E'\\n' || 'x'))",
            [(titulo, vector_literal(v), model, titulo) for titulo, v, model in rows],
        )
    nearest = db.execute(
        "SELECT n.rank, k.embedding_model AS model,"
        " k.embedding OPERATOR(extensions.<=>) %(q)s::extensions.vector AS distance"
        " FROM public._nearest_knowledge(%(q)s::extensions.vector, %(m)s, 40) AS n"
        " JOIN public.conhecimento_julia AS k ON k.id = n.id ORDER BY n.rank",
        {"q": vector_literal(question), "m": LOCAL_MODEL},
    ).fetchall()
    assert [r["rank"] for r in nearest] == list(range(1, 41))
    assert {r["model"] for r in nearest} == {LOCAL_MODEL}
    distances = [r["distance"] for r in nearest]
    assert distances == sorted(distances)


async def test_changed_content_is_due_again(db, aconn, chunks):
    embedder = LocalEmbedder()
    await reindex(aconn, embedder)
    assert due(db, LOCAL_MODEL) == []

    chunk_id = chunks["Cancelamento"]
    old = db.execute("SELECT content_hash FROM public.conhecimento_julia WHERE id = %s", (chunk_id,)).fetchone()
    new_text = "Cancelar com menos de 12 horas suspende novas ofertas por dois meses."
    db.execute("UPDATE public.conhecimento_julia SET conteudo = %s WHERE id = %s", (new_text, chunk_id))
    assert due(db, LOCAL_MODEL) == [chunk_id]

    # An embedding of the old text is refused, and the chunk stays due.
    params = {"id": chunk_id, "model": LOCAL_MODEL, "hash": old["content_hash"]}
    stale = vector_literal(hash_embedding("old"))
    assert db.execute(queries["store_embedding"], {**params, "embedding": stale}).fetchone() == {"stored": False}
    assert due(db, LOCAL_MODEL) == [chunk_id]

    result = await reindex(aconn, embedder)
    assert (result.due, result.embedded, result.stale) == (1, 1, 0)
    assert due(db, LOCAL_MODEL) == []
    rows = search_sql(db, None, hash_embedding(document_text("Cancelamento", new_text)), LOCAL_MODEL, limit=1)
    assert rows[0]["id"] == chunk_id


def test_store_embedding_checks_its_arguments(db, chunks):
    chunk_id = chunks["Uniforme"]
    h = db.execute("SELECT content_hash FROM public.conhecimento_julia WHERE id = %s", (chunk_id,)).fetchone()
    params = {"model": LOCAL_MODEL, "hash": h["content_hash"]}
    with pytest.raises(NotFound, match="knowledge chunk 999999 not found"), wrap_db_errors():
        db.execute(queries["store_embedding"], {**params, "id": 999999, "embedding": vector_literal([1.0] * 1024)})
    with pytest.raises(InvalidInput, match=f"chunk {chunk_id} got a 3 dimension embedding"), wrap_db_errors():
        db.execute(queries["store_embedding"], {**params, "id": chunk_id, "embedding": "[1,0,0]"})
    with pytest.raises(InvalidInput, match="model name is required"), wrap_db_errors():
        due(db, "")


# --- julia kb reindex -----------------------------------------------------------------


def test_cli_reindex_with_the_local_embedder(database_url, db, chunks):
    env = {"APP_ENV": "test", "DATABASE_URL": database_url}
    done = run_cli(env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "embedded 10 chunks with local-hash-1024"
    assert due(db, LOCAL_MODEL) == []
    row = db.execute("SELECT count(*) AS n FROM public.conhecimento_julia WHERE embedding IS NOT NULL").fetchone()
    assert row["n"] == 10

    again = run_cli(env, "--batch-size", "3")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "embedded 0 chunks with local-hash-1024"


def test_cli_reindex_through_voyage(database_url, db, voyage, chunks):
    env = voyage_env(database_url, voyage)
    voyage.fail_next(400)
    failed = run_cli(env)
    assert failed.returncode == 1
    assert "julia: error: Voyage answered 400" in failed.stderr
    assert VOYAGE_KEY not in failed.stderr + failed.stdout

    done = run_cli(env, "--batch-size", "3")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"embedded 10 chunks with {VOYAGE_MODEL}"
    assert [len(c["input"]) for c in voyage.calls()] == [10, 3, 3, 3, 1]  # the failed call, then batches of 3
    assert due(db, VOYAGE_MODEL) == []
    assert due(db, LOCAL_MODEL) == sorted(chunks.values())
