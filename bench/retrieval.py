"""Retrieval benchmark: hybrid `public.buscar_conhecimento` with indexes vs sequential scans.

Starts its own embedded PostgreSQL, generates N realistic pt-BR knowledge
chunks (plantões, pagamentos, documentos, hospitais, ...), embeds them with
the local hash embedder, loads them with COPY and ANALYZEs. Then runs Q
questions through the named query the reply job uses, once as planned (HNSW +
GIN) and once with index and bitmap scans disabled, and compares latencies.
Recall@5 compares the HNSW vector side with the exact (sequential) one.

    uv run python bench/retrieval.py [--chunks 10000] [--queries 200]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import random
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import benchkit
import psycopg
from benchkit import BenchError
from psycopg.rows import dict_row

from app.conversation.embeddings import LOCAL_MODEL, hash_embedding
from app.conversation.knowledge import document_text, vector_literal
from app.store.queries import queries

BENCH_DB = "julia_bench"
SEED = 20240611
LIMIT = 5

INDEX_DEF = "SELECT pg_get_indexdef('public.conhecimento_embedding_idx'::regclass) AS def"
DROP_INDEX = "DROP INDEX public.conhecimento_embedding_idx"
BUILD_SETTINGS = ("SET maintenance_work_mem = '512MB'", "SET max_parallel_maintenance_workers = 1")
COPY_CHUNKS = (
    "COPY public.conhecimento_julia (fonte, titulo, conteudo, tags, embedding, embedding_model, embedded_hash)"
    " FROM STDIN"
)
ANALYZE = "VACUUM (ANALYZE) public.conhecimento_julia"  # and nothing left for autovacuum to do mid-run
COUNT_DUE = "SELECT count(*) AS n FROM public.knowledge_to_embed(%s, NULL)"
# The seq-scan modes run in a transaction without the two indexes, rolled back at the end:
# planner settings alone do not do it, since _nearest_knowledge sets enable_seqscan = off
# and, with both disabled, PostgreSQL 18 still picks the HNSW index by cost.
SEQ_SCAN = ("DROP INDEX public.conhecimento_embedding_idx", "DROP INDEX public.conhecimento_tsv_idx")
INDEX_SCANS = """
SELECT indexrelname AS name, idx_scan AS scans FROM pg_stat_user_indexes
 WHERE relname = 'conhecimento_julia' AND indexrelname IN ('conhecimento_embedding_idx', 'conhecimento_tsv_idx')
"""


# ------------------------------------------------------------------
# Corpus: pt-BR chunks composed from word lists
# ------------------------------------------------------------------

HOSPITAIS = [
    "Hospital São Luiz",
    "Hospital Albert Einstein",
    "Santa Casa de Misericórdia",
    "Hospital Sírio-Libanês",
    "Hospital das Clínicas",
    "Hospital Moinhos de Vento",
    "Hospital Mater Dei",
    "Hospital Português",
    "Hospital Santa Marta",
    "Hospital Municipal do Tatuapé",
    "UPA Vila Mariana",
    "Hospital Regional de Sorocaba",
    "Hospital Santa Izabel",
    "Hospital Pequeno Príncipe",
    "Hospital Evangélico",
    "Hospital Universitário Cajuru",
]
CIDADES = [
    "São Paulo",
    "Campinas",
    "Santos",
    "Sorocaba",
    "Ribeirão Preto",
    "Belo Horizonte",
    "Porto Alegre",
    "Curitiba",
    "Salvador",
    "Recife",
    "Goiânia",
    "Florianópolis",
    "Brasília",
    "Fortaleza",
]
ESPECIALIDADES = [
    "clínica médica",
    "pediatria",
    "ortopedia",
    "cardiologia",
    "anestesiologia",
    "ginecologia e obstetrícia",
    "cirurgia geral",
    "medicina intensiva",
    "psiquiatria",
    "neurologia",
    "medicina de emergência",
    "neonatologia",
]
SETORES = [
    "pronto-socorro",
    "UTI adulto",
    "UTI neonatal",
    "enfermaria",
    "centro cirúrgico",
    "ambulatório",
    "sala vermelha",
    "maternidade",
]
PERIODOS = [
    "diurno de 12 horas",
    "noturno de 12 horas",
    "de 24 horas",
    "de 6 horas pela manhã",
    "vespertino de 6 horas",
]
DOCUMENTOS = [
    "CRM ativo",
    "RG",
    "CPF",
    "comprovante de residência",
    "diploma",
    "certificado de residência médica",
    "título de especialista",
    "carteira de vacinação",
    "certidão negativa do CRM",
    "cartão do CNES",
    "contrato social da PJ",
    "dados bancários",
]
FORMAS = ["pessoa jurídica", "RPA", "cooperativa", "sócio de SCP"]
DIAS = ["5", "10", "15", "20", "25", "30"]

TOPICS: dict[str, tuple[Sequence[str], Sequence[str]]] = {
    "plantoes": (
        ["Plantão {periodo} em {esp}", "Escala de {esp} no {setor}", "Como funcionam os plantões de {esp}"],
        [
            "O plantão {periodo} no {setor} do {hosp}, em {cidade}, é coberto por um médico de {esp}.",
            "A escala de {esp} é fechada até o dia {dia} de cada mês pela coordenação do {hosp}.",
            "Plantonistas de {esp} fazem passagem de plantão 15 minutos antes do horário no {setor}.",
            "Há vagas abertas de {esp} no {setor}, com plantões {periodo} nos fins de semana.",
            "Quem assume plantão {periodo} tem direito a repouso e refeição no {hosp}.",
            "Trocas de plantão precisam ser avisadas com 48 horas de antecedência à coordenação.",
        ],
    ),
    "pagamentos": (
        ["Pagamento de plantões no {hosp}", "Valores de {esp} em {cidade}", "Adiantamento e prazos de pagamento"],
        [
            "O pagamento do plantão {periodo} de {esp} é feito até o dia {dia} do mês seguinte.",
            "Médicos que recebem como {forma} emitem nota fiscal até o dia {dia}.",
            "O valor do plantão {periodo} no {hosp} é de R$ {valor} por turno.",
            "É possível pedir adiantamento de até 70% do valor depois que a escala é confirmada.",
            "Descontos de impostos dependem da forma de recebimento: {forma}.",
            "Comprovantes de pagamento ficam disponíveis no aplicativo no dia {dia}.",
        ],
    ),
    "documentos": (
        ["Documentos para cadastro", "Cadastro de médicos de {esp}", "Credenciamento no {hosp}"],
        [
            "Para o cadastro, envie {doc}, {doc2} e {doc3} em PDF legível.",
            "O credenciamento no {hosp} exige {doc} e {doc2} atualizados.",
            "Sem {doc} válido o médico não pode ser escalado em {cidade}.",
            "A análise dos documentos leva até {dia} dias úteis depois do envio completo.",
            "Médicos de {esp} também precisam apresentar {doc3}.",
        ],
    ),
    "hospitais": (
        ["Estrutura do {hosp}", "Como chegar ao {hosp}", "Regras do {setor} no {hosp}"],
        [
            "O {hosp} fica em {cidade} e tem estacionamento coberto para plantonistas.",
            "O {setor} do {hosp} conta com {leitos} leitos e equipe de enfermagem própria.",
            "A entrada de médicos no {hosp} é pela portaria lateral, com crachá.",
            "O conforto médico do {setor} tem armários, chuveiro e sala de descanso.",
            "O {hosp} oferece refeição gratuita aos médicos durante o plantão {periodo}.",
        ],
    ),
    "regras": (
        ["Cancelamento de plantão", "Trocas e faltas em {cidade}", "Conduta no {setor}"],
        [
            "Cancelar um plantão com menos de 24 horas pode suspender novas ofertas por um mês.",
            "Faltas sem aviso no {hosp} são comunicadas à coordenação de {esp}.",
            "Use jaleco branco e crachá; o pijama cirúrgico é fornecido no {setor}.",
            "Atrasos acima de 30 minutos são descontados do valor do plantão {periodo}.",
            "Dúvidas sobre a escala de {esp} devem ir ao grupo da coordenação em {cidade}.",
        ],
    ),
}

QUESTIONS = [
    "Quanto paga o plantão {periodo} de {esp} no {hosp}?",
    "Quais documentos preciso mandar para o cadastro?",
    "Como funciona o adiantamento do pagamento?",
    "Tem estacionamento no {hosp}?",
    "Até que dia sai o pagamento do plantão?",
    "Posso trocar meu plantão de {esp} no {setor}?",
    "O que acontece se eu cancelar um plantão em cima da hora?",
    "Vocês têm vaga de {esp} em {cidade}?",
    "Preciso emitir nota fiscal como {forma}?",
    "Onde fica o conforto médico do {setor}?",
    "Quais hospitais vocês atendem em {cidade}?",
    "O {hosp} oferece refeição no plantão {periodo}?",
]


def fill(template: str, rng: random.Random) -> str:
    docs = rng.sample(DOCUMENTOS, 3)
    return template.format(
        hosp=rng.choice(HOSPITAIS),
        cidade=rng.choice(CIDADES),
        esp=rng.choice(ESPECIALIDADES),
        setor=rng.choice(SETORES),
        periodo=rng.choice(PERIODOS),
        doc=docs[0],
        doc2=docs[1],
        doc3=docs[2],
        forma=rng.choice(FORMAS),
        dia=rng.choice(DIAS),
        valor=f"{rng.randrange(900, 3200, 50):,}".replace(",", "."),
        leitos=rng.randrange(8, 60),
    )


@dataclass(frozen=True, kw_only=True)
class Chunk:
    fonte: str
    titulo: str
    conteudo: str
    tags: list[str]


def generate_chunks(count: int, rng: random.Random) -> list[Chunk]:
    """`count` chunks of 3-6 sentences on one topic each; (fonte, titulo) unique."""
    names = list(TOPICS)
    chunks = []
    for n in range(count):
        topic = names[n % len(names)]
        titles, sentences = TOPICS[topic]
        body = " ".join(fill(s, rng) for s in rng.sample(sentences, rng.randint(3, min(6, len(sentences)))))
        titulo = f"{fill(rng.choice(titles), rng)} (ref. {n})"
        chunks.append(Chunk(fonte=f"manual-{topic}", titulo=titulo, conteudo=body, tags=[topic]))
    return chunks


def generate_questions(count: int, rng: random.Random) -> list[str]:
    return [fill(rng.choice(QUESTIONS), rng) for _ in range(count)]


# ------------------------------------------------------------------
# Database
# ------------------------------------------------------------------


def load(url: str, chunks: Sequence[Chunk]) -> tuple[float, float, float]:
    """Embed, COPY, rebuild the HNSW index and ANALYZE; returns (embed, copy, index) seconds."""
    start = time.perf_counter()
    rows = []
    for c in chunks:
        text = document_text(c.titulo, c.conteudo)
        content_hash = hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()
        rows.append((c.fonte, c.titulo, c.conteudo, c.tags, vector_literal(hash_embedding(text)), content_hash))
    embedded = time.perf_counter()
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        # Building the graph once after the load is much faster than inserting into it row by row.
        index_def = conn.execute(INDEX_DEF).fetchone()["def"]
        conn.execute(DROP_INDEX)
        with conn.transaction(), conn.cursor() as cur, cur.copy(COPY_CHUNKS) as copy:
            for fonte, titulo, conteudo, tags, embedding, content_hash in rows:
                copy.write_row((fonte, titulo, conteudo, tags, embedding, LOCAL_MODEL, content_hash))
        copied = time.perf_counter()
        for statement in BUILD_SETTINGS:
            conn.execute(statement)
        conn.execute(index_def)
        conn.execute(ANALYZE)
        indexed = time.perf_counter()
        left = conn.execute(COUNT_DUE, (LOCAL_MODEL,)).fetchone()["n"]
    if left:
        raise BenchError(f"{left} chunks are still due for embedding after the load (hash mismatch?)")
    return embedded - start, copied - embedded, indexed - copied


def index_scans(url: str) -> dict[str, int]:
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        return {row["name"]: row["scans"] for row in conn.execute(INDEX_SCANS)}


# ------------------------------------------------------------------
# Measurement
# ------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Run:
    """One mode over all questions: latencies (seconds), result ids, index scans used."""

    name: str
    latencies: Sequence[float]
    results: Sequence[list[int]]
    hnsw_scans: int
    gin_scans: int

    def percentile_ms(self, p: float) -> float:
        """Nearest-rank percentile in milliseconds."""
        return benchkit.percentile_ms(self.latencies, p)


def measure(url: str, name: str, questions: Sequence[tuple[str | None, str]], *, seq_scan: bool) -> Run:
    """Run every (text, embedding) question through `search_knowledge` on a fresh session."""
    before = index_scans(url)
    latencies: list[float] = []
    results: list[list[int]] = []
    # A new session per mode: PL/pgSQL caches plans, and a cached plan ignores later SETs.
    with (
        psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn,
        conn.transaction(force_rollback=True) if seq_scan else contextlib.nullcontext(),
    ):
        if seq_scan:
            for statement in SEQ_SCAN:
                conn.execute(statement)
        # One unmeasured pass first: the index, heap and TOAST (~150 MB at 10k chunks) do not
        # all fit in the default 128 MB of shared buffers, and the previous mode evicted pages.
        for i, (text, embedding) in enumerate([*questions, *questions]):
            params = {"query": text, "embedding": embedding, "model": LOCAL_MODEL, "limit": LIMIT}
            start = time.perf_counter()
            rows = conn.execute(queries["search_knowledge"], params).fetchall()
            elapsed = time.perf_counter() - start
            if i >= len(questions):
                latencies.append(elapsed)
                results.append([row["id"] for row in rows])
        conn.execute("SELECT pg_stat_force_next_flush()")
        conn.execute("SELECT 1")
    after = index_scans(url)
    for _ in range(20):  # the backend flushes its counters when it goes idle or exits
        if after != before or seq_scan:
            break
        time.sleep(0.1)
        after = index_scans(url)
    return Run(
        name=name,
        latencies=latencies,
        results=results,
        hnsw_scans=after["conhecimento_embedding_idx"] - before["conhecimento_embedding_idx"],
        gin_scans=after["conhecimento_tsv_idx"] - before["conhecimento_tsv_idx"],
    )


def recall_at(k: int, approximate: Run, exact: Run) -> float:
    hits = [
        len(set(a[:k]) & set(e[:k])) / max(1, min(k, len(e)))
        for a, e in zip(approximate.results, exact.results, strict=True)
    ]
    return sum(hits) / len(hits)


def print_table(runs: Sequence[Run]) -> None:
    header = ["mode", "queries", "p50 ms", "p99 ms", "mean ms", "HNSW scans", "GIN scans"]
    rows = [
        [
            r.name,
            str(len(r.latencies)),
            f"{r.percentile_ms(50):.2f}",
            f"{r.percentile_ms(99):.2f}",
            f"{sum(r.latencies) / len(r.latencies) * 1000:.2f}",
            str(r.hnsw_scans),
            str(r.gin_scans),
        ]
        for r in runs
    ]
    benchkit.print_table(header, rows)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=10_000, help="knowledge chunks to load (default 10000)")
    parser.add_argument("--queries", type=int, default=200, help="measured questions per mode (default 200)")
    args = parser.parse_args(argv)
    if not 10 <= args.chunks <= 200_000:
        parser.error("--chunks must be between 10 and 200000")
    if not 1 <= args.queries <= 10_000:
        parser.error("--queries must be between 1 and 10000")

    rng = random.Random(SEED)
    chunks = generate_chunks(args.chunks, rng)
    texts = generate_questions(args.queries, rng)
    hybrid = [(text, vector_literal(hash_embedding(text))) for text in texts]
    vector_only = [(None, embedding) for _, embedding in hybrid]

    signal.signal(signal.SIGINT, benchkit.interrupt_once)
    print("starting embedded PostgreSQL, migrating ...", flush=True)
    with benchkit.embedded_database(bootstrap=False) as url:
        print(f"embedding and loading {len(chunks)} chunks ({LOCAL_MODEL}) ...", flush=True)
        embed_s, copy_s, index_s = load(url, chunks)
        print(f"embed {embed_s:.1f}s, COPY {copy_s:.1f}s, HNSW build + ANALYZE {index_s:.1f}s", flush=True)
        print(f"{len(texts)} questions per mode, after one warm-up pass ...", flush=True)
        runs = [
            measure(url, "hybrid, indexes", hybrid, seq_scan=False),
            measure(url, "hybrid, seq scan", hybrid, seq_scan=True),
            measure(url, "vector only, HNSW", vector_only, seq_scan=False),
            measure(url, "vector only, exact", vector_only, seq_scan=True),
        ]
    index, seq, hnsw, exact = runs
    if index.hnsw_scans == 0:
        print("warning: the planner did not use the HNSW index in the indexed run", file=sys.stderr)

    print()
    print_table(runs)
    print()
    print(
        f"hybrid speed-up, index vs seq scan: p50 ×{seq.percentile_ms(50) / index.percentile_ms(50):.1f}, "
        f"p99 ×{seq.percentile_ms(99) / index.percentile_ms(99):.1f}"
    )
    # Sparse hash vectors are a hard case for HNSW graphs; dense model embeddings recall better.
    print(f"recall@{LIMIT} of the HNSW vector side vs exact: {recall_at(LIMIT, hnsw, exact):.3f}")
    same = sum(a == b for a, b in zip(index.results, seq.results, strict=True))
    print(f"hybrid top-{LIMIT} identical in both modes: {same}/{len(texts)} questions")


if __name__ == "__main__":
    benchkit.run(main)
