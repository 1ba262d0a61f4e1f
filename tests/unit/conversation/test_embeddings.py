"""The local hash embedding (pure), the embedders and the Voyage client (on httpx.MockTransport)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable

import pytest

from app.conversation.embeddings import (
    DIMENSION,
    LOCAL_MODEL,
    LocalEmbedder,
    VoyageEmbedder,
    build_embedder,
    cosine_similarity,
    features,
    hash_embedding,
    normalize,
)
from app.conversation.knowledge import document_text, vector_literal
from app.core.config import load_settings
from app.devkit.standins.server import RecordedRequest, Reply, StandinServer, json_reply
from app.integrations.voyage import MAX_BATCH, VoyageClient, VoyageError

PLANTAO = "Plantão noturno de 12 horas no pronto-socorro do Hospital São Luiz"
PLANTAO_SIMILAR = "Plantões noturnos de 12h no pronto socorro, hospital São Luiz"
UNRELATED = "Envie cópia do CRM, RG e comprovante de residência para o cadastro"


def digest(vector: list[float]) -> str:
    return hashlib.sha256(json.dumps([round(x, 6) for x in vector]).encode()).hexdigest()[:16]


# --- pure functions -----------------------------------------------------------------


def test_normalize_lowercases_and_drops_accents():
    assert normalize("Plantão MÉDICO, Açaí") == "plantao medico, acai"


def test_features_are_content_words_and_their_trigrams():
    names = [name for name, _ in features("O plantão é de UTI")]
    assert "w:plantao" in names and "w:uti" in names
    assert not {"w:o", "w:e", "w:de"} & set(names)  # stop words ("é" unaccented is "e")
    assert {"t: pl", "t:pla", "t:ao "} <= set(names)


def test_embedding_has_the_dimension_and_unit_length():
    vector = hash_embedding(PLANTAO)
    assert len(vector) == DIMENSION == 1024
    assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, rel_tol=1e-9)
    assert len(hash_embedding(PLANTAO, 256)) == 256


def test_embedding_is_deterministic_and_ignores_case_and_accents():
    assert hash_embedding(PLANTAO) == hash_embedding(PLANTAO)
    assert hash_embedding("PLANTÃO noturno") == hash_embedding("plantao noturno")


def test_embedding_does_not_depend_on_the_python_hash_seed():
    code = (
        "import sys, json; from app.conversation.embeddings import hash_embedding;"
        " print(json.dumps(hash_embedding(sys.argv[1])))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code, PLANTAO],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1
    assert json.loads(outputs.pop()) == hash_embedding(PLANTAO)


def test_embedding_is_pinned():
    # Stored vectors are tagged `local-hash-1024`: changing the function needs a new model name.
    assert LOCAL_MODEL == "local-hash-1024"
    assert digest(hash_embedding(PLANTAO)) == "850ee99c29bfe570"


def test_similar_texts_are_closer_than_unrelated_ones():
    near = cosine_similarity(hash_embedding(PLANTAO), hash_embedding(PLANTAO_SIMILAR))
    far = cosine_similarity(hash_embedding(PLANTAO), hash_embedding(UNRELATED))
    assert near > 0.5
    assert abs(far) < 0.15
    query = hash_embedding("quanto paga o plantão noturno?")
    assert cosine_similarity(query, hash_embedding(PLANTAO)) > cosine_similarity(query, hash_embedding(UNRELATED))


@pytest.mark.parametrize("text", ["", "   ", "de da do o a", "!!!"])
def test_text_without_content_words_still_gets_a_unit_vector(text):
    vector = hash_embedding(text)
    assert math.isclose(sum(x * x for x in vector), 1.0)
    assert vector == hash_embedding("")


def test_cosine_similarity_checks_lengths():
    assert cosine_similarity([1.0, 0.0], [0.0, 0.0]) == 0.0
    with pytest.raises(ValueError, match="differ in length"):
        cosine_similarity([1.0], [1.0, 0.0])


def test_vector_literal_and_document_text():
    assert vector_literal([0.5, -0.25, 1e-9]) == "[0.5,-0.25,1e-09]"
    assert document_text("Pagamento", "Em até 30 dias.") == "Pagamento\nEm até 30 dias."


# --- embedders ----------------------------------------------------------------------


async def test_local_embedder():
    embedder = LocalEmbedder()
    assert (embedder.model, embedder.dimension) == ("local-hash-1024", 1024)
    vectors = await embedder.embed([PLANTAO, UNRELATED], "document")
    assert vectors == [hash_embedding(PLANTAO), hash_embedding(UNRELATED)]
    assert await embedder.embed([PLANTAO], "query") == [hash_embedding(PLANTAO)]
    with pytest.raises(TypeError):
        await embedder.embed(PLANTAO)


async def test_build_embedder_picks_voyage_only_with_a_key():
    assert isinstance(build_embedder(load_settings("dev", {}), {}), LocalEmbedder)
    settings = load_settings("dev", {"VOYAGE_API_KEY": "pa-test", "VOYAGE_MODEL": "voyage-3.5-lite"})
    embedder = build_embedder(settings, {"VOYAGE_BASE_URL": "http://127.0.0.1:9/"})
    try:
        assert isinstance(embedder, VoyageEmbedder)
        assert (embedder.model, embedder.dimension) == ("voyage-3.5-lite", 1024)
        assert str(embedder._client._http.base_url) == "http://127.0.0.1:9"
    finally:
        await embedder.aclose()


# --- Voyage client, against a real HTTP server on 127.0.0.1 ---------------------------


class ScriptedVoyage(StandinServer):
    """Answers each request with `handler(request) -> Reply`."""

    def __init__(self, handler: Callable[[RecordedRequest], Reply]) -> None:
        super().__init__()
        self._handler = handler

    def handle(self, request: RecordedRequest) -> Reply:
        return self._handler(request)


@contextlib.asynccontextmanager
async def voyage(handler, model: str = "voyage-3.5-lite", timeout: float = 5.0) -> AsyncIterator[VoyageClient]:
    with ScriptedVoyage(handler) as server:
        client = VoyageClient("pa-test", model, server.url, timeout=timeout)
        try:
            yield client
        finally:
            await client.aclose()


async def test_voyage_client_batches_and_orders_by_index():
    bodies: list[dict] = []

    def handler(request: RecordedRequest) -> Reply:
        assert request.path == "/v1/embeddings"
        assert request.headers["authorization"] == "Bearer pa-test"
        bodies.append(request.json)
        data = [
            {"object": "embedding", "embedding": [float(len(t)), 0.0], "index": i}
            for i, t in enumerate(request.json["input"])
        ]
        return json_reply(200, {"data": list(reversed(data)), "usage": {"total_tokens": 1}})

    texts = ["x" * n for n in range(1, 2 * MAX_BATCH + 45)]
    async with voyage(handler) as client:
        vectors = await client.embed(texts, "query")
    assert [len(b["input"]) for b in bodies] == [128, 128, 44]
    assert {(b["model"], b["input_type"]) for b in bodies} == {("voyage-3.5-lite", "query")}
    assert [v[0] for v in vectors] == [float(len(t)) for t in texts]


@pytest.mark.parametrize(("status", "transient"), [(500, True), (503, True), (429, True), (400, False), (401, False)])
async def test_voyage_errors_say_whether_to_retry(status, transient):
    async with voyage(lambda request: json_reply(status, {"detail": "Stand-in says no"})) as client:
        with pytest.raises(VoyageError, match=f"answered {status} on /v1/embeddings: Stand-in says no") as err:
            await client.embed(["oi"])
    assert (err.value.transient, err.value.status) == (transient, status)


async def test_voyage_timeouts_are_transient():
    def handler(request: RecordedRequest) -> Reply:
        time.sleep(0.5)
        return json_reply(200, {"data": []})

    async with voyage(handler, timeout=0.1) as client:
        with pytest.raises(VoyageError, match="timed out") as err:
            await client.embed(["oi"])
    assert err.value.transient


@pytest.mark.parametrize(
    "body",
    [
        {"data": []},
        {"data": [{"embedding": [1.0], "index": 0}, {"embedding": [1.0], "index": 0}]},
        {"data": [{"embedding": "nope", "index": 0}, {"embedding": [1.0], "index": 1}]},
        {"unexpected": True},
    ],
)
async def test_voyage_answers_that_do_not_fit_are_permanent_errors(body):
    async with voyage(lambda request: json_reply(200, body)) as client:
        with pytest.raises(VoyageError) as err:
            await client.embed(["a", "b"])
    assert not err.value.transient


async def test_voyage_embedder_rejects_other_dimensions():
    reply = json_reply(200, {"data": [{"embedding": [0.1] * 512, "index": 0}]})
    async with voyage(lambda request: reply) as client:
        with pytest.raises(VoyageError, match="512 dimensions, expected 1024"):
            await VoyageEmbedder(client).embed(["oi"], "query")
