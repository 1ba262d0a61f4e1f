-- What Julia knows: hybrid retrieval over public.conhecimento_julia, and the
-- bookkeeping that keeps its embeddings current. Vectors are compared only
-- among rows embedded by the same model; full-text search uses
-- public.portuguese_unaccent ("plantão" = "plantao"). The two rankings are
-- fused by reciprocal rank fusion: score = Σ 1 / (60 + rank).

------------------------------------------------------------
-- Search
------------------------------------------------------------

-- The `p_k` chunks embedded with `p_model` nearest to `p_embedding` by cosine
-- distance, ranked from 1; no rows when an argument is NULL.
CREATE OR REPLACE FUNCTION public._nearest_knowledge(p_embedding extensions.vector, p_model text, p_k integer)
RETURNS TABLE (id bigint, rank integer)
LANGUAGE sql STABLE STRICT
ROWS 40
SET search_path = ''
-- The planner does not cost a sequential scan's reads of TOASTed vectors, so it picks
-- one up to ~10k chunks where HNSW is ~9x faster (bench/retrieval.py).
SET enable_seqscan = off
-- Keep walking the HNSW graph until p_k rows of p_model are found (pgvector >= 0.8).
SET hnsw.iterative_scan = 'relaxed_order'
AS $$
    WITH nearest AS MATERIALIZED (
        SELECT k.id, k.embedding OPERATOR(extensions.<=>) p_embedding AS distance
          FROM public.conhecimento_julia AS k
         WHERE k.embedding_model = p_model
         ORDER BY k.embedding OPERATOR(extensions.<=>) p_embedding
         LIMIT p_k
    )
    -- relaxed_order may return rows slightly out of order: rank them again.
    SELECT n.id, (pg_catalog.row_number() OVER (ORDER BY n.distance, n.id))::integer
      FROM nearest AS n;
$$;

-- The full-text queries of a question: all of its words (websearch syntax)
-- and any of them (a WhatsApp question rarely has every word in one
-- chunk); both NULL for a question of stop words only, which has no lexemes.
CREATE OR REPLACE FUNCTION public._knowledge_tsqueries(
    p_query text, OUT all_words pg_catalog.tsquery, OUT any_word pg_catalog.tsquery
)
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT pg_catalog.websearch_to_tsquery('public.portuguese_unaccent', p_query),
           pg_catalog.replace(
               pg_catalog.replace(pg_catalog.plainto_tsquery('public.portuguese_unaccent', p_query)::text,
                                  ' & ', ' | '),
               ' <-> ', ' | ')::pg_catalog.tsquery
     WHERE pg_catalog.length(pg_catalog.to_tsvector('public.portuguese_unaccent', coalesce(p_query, ''))) > 0;
$$;

-- The best `p_limit` chunks for a question: the 40 nearest by cosine distance
-- (rows embedded with `p_model` only; skipped when `p_embedding` is NULL) and
-- the 40 best full-text matches of any of the question's words (rows matching
-- all of them, websearch syntax, first), fused by reciprocal rank.
CREATE OR REPLACE FUNCTION public.buscar_conhecimento(
    p_query text,
    p_embedding extensions.vector,
    p_model text,
    p_limit integer DEFAULT 5
)
RETURNS TABLE (
    id bigint,
    fonte text,
    titulo text,
    conteudo text,
    tags text[],
    score double precision,
    fts_rank integer,
    vector_rank integer
)
LANGUAGE plpgsql STABLE
SET search_path = ''
AS $$
#variable_conflict use_column
DECLARE
    _rrf_k CONSTANT double precision := 60;
    _all_words pg_catalog.tsquery;
    _any_word pg_catalog.tsquery;
BEGIN
    IF p_limit IS NULL OR p_limit < 1 OR p_limit > 100 THEN
        RAISE EXCEPTION 'buscar_conhecimento: limit must be between 1 and 100 (got %)', p_limit USING ERRCODE = 'JU400';
    END IF;
    IF p_embedding IS NOT NULL AND p_model IS NULL THEN
        RAISE EXCEPTION 'buscar_conhecimento: an embedding needs its model name (query %)', p_query
            USING ERRCODE = 'JU400';
    END IF;

    SELECT q.all_words, q.any_word INTO _all_words, _any_word FROM public._knowledge_tsqueries(p_query) AS q;
    RETURN QUERY
    WITH by_vector AS (
        SELECT v.id, v.rank FROM public._nearest_knowledge(p_embedding, p_model, 40) AS v
    ),
    matches AS MATERIALIZED (
        SELECT k.id,
               k.tsv @@ _all_words AS has_all,
               pg_catalog.ts_rank_cd(k.tsv, _any_word) AS rank_cd
          FROM public.conhecimento_julia AS k
         WHERE _any_word IS NOT NULL
           AND k.tsv @@ _any_word
         ORDER BY 2 DESC, 3 DESC, k.id
         LIMIT 40  -- a literal, so that a generic plan knows how few rows come out
    ),
    by_text AS (
        SELECT m.id, (pg_catalog.row_number() OVER (ORDER BY m.has_all DESC, m.rank_cd DESC, m.id))::integer AS rank
          FROM matches AS m
    ),
    fused AS (
        SELECT coalesce(v.id, t.id) AS id,
               t.rank AS fts_rank,
               v.rank AS vector_rank,
               coalesce(1.0::double precision / (_rrf_k + t.rank), 0)
                 + coalesce(1.0::double precision / (_rrf_k + v.rank), 0) AS score
          FROM by_vector AS v
          FULL JOIN by_text AS t ON t.id = v.id
    )
    SELECT k.id, k.fonte, k.titulo, k.conteudo, k.tags, f.score, f.fts_rank, f.vector_rank
      FROM fused AS f
      JOIN public.conhecimento_julia AS k ON k.id = f.id
     ORDER BY f.score DESC, LEAST(f.fts_rank, f.vector_rank), k.id
     LIMIT p_limit;
END;
$$;

------------------------------------------------------------
-- Embedding bookkeeping
------------------------------------------------------------

-- Chunks whose embedding is missing, stale (content changed since it was
-- embedded) or made by another model than `p_model`; oldest first.
-- `p_limit` NULL returns them all.
CREATE OR REPLACE FUNCTION public.knowledge_to_embed(p_model text, p_limit integer)
RETURNS TABLE (id bigint, titulo text, conteudo text, content_hash text)
LANGUAGE plpgsql STABLE
SET search_path = ''
AS $$
#variable_conflict use_column
BEGIN
    IF p_model IS NULL OR p_model = '' THEN
        RAISE EXCEPTION 'knowledge_to_embed: model name is required (limit %)', p_limit USING ERRCODE = 'JU400';
    END IF;
    IF p_limit IS NOT NULL AND p_limit < 1 THEN
        RAISE EXCEPTION 'knowledge_to_embed: limit must be positive (got %)', p_limit USING ERRCODE = 'JU400';
    END IF;
    RETURN QUERY
    SELECT k.id, k.titulo, k.conteudo, k.content_hash
      FROM public.conhecimento_julia AS k
     WHERE k.embedding IS NULL
        OR k.embedded_hash IS DISTINCT FROM k.content_hash
        OR k.embedding_model IS DISTINCT FROM p_model
     ORDER BY k.id
     LIMIT p_limit;
END;
$$;

-- Store the embedding of chunk `p_id` computed from the content whose hash is
-- `p_hash`. Returns false, storing nothing, when the content changed since
-- (the chunk stays due); raises when the chunk does not exist.
CREATE OR REPLACE FUNCTION public.store_embedding(
    p_id bigint,
    p_model text,
    p_hash text,
    p_embedding extensions.vector
)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    IF p_model IS NULL OR p_model = '' OR p_hash IS NULL OR p_embedding IS NULL THEN
        RAISE EXCEPTION 'store_embedding: model, hash and embedding are required (chunk %)', p_id
            USING ERRCODE = 'JU400';
    END IF;
    IF extensions.vector_dims(p_embedding) <> 1024 THEN
        RAISE EXCEPTION 'store_embedding: chunk % got a % dimension embedding from %, expected 1024',
            p_id, extensions.vector_dims(p_embedding), p_model USING ERRCODE = 'JU400';
    END IF;

    UPDATE public.conhecimento_julia AS k
       SET embedding = p_embedding,
           embedding_model = p_model,
           embedded_hash = p_hash
     WHERE k.id = p_id
       AND k.content_hash = p_hash;
    IF FOUND THEN
        RETURN true;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM public.conhecimento_julia AS k WHERE k.id = p_id) THEN
        RAISE EXCEPTION 'store_embedding: knowledge chunk % not found', p_id USING ERRCODE = 'JU404';
    END IF;
    RETURN false;
END;
$$;
