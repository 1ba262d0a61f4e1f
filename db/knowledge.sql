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
LANGUAGE plpgsql STABLE STRICT
ROWS 40
SET search_path = ''
-- The planner does not cost a sequential scan's reads of TOASTed vectors, so it picks
-- one up to ~10k chunks where HNSW is ~9x faster (bench/retrieval.py).
SET enable_seqscan = off
-- A wider search list than the default 40: recall@5 vs exact ~0.96 at 10k chunks, against
-- ~0.89 at 40 (bench/retrieval.py). The graph is built with ef_construction 512 (revision 0021);
-- on 0017's 256 graph the same recall took 200, a third more work per search.
SET hnsw.ef_search = 120
-- First without pgvector's iterative scan, which keeps every candidate it discards for a
-- later walk: the same rows when the search list holds p_k of p_model (bench/README.md).
SET hnsw.iterative_scan = 'off'
-- One plan for every question (the index scan), not a new plan per vector.
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    _ids bigint[];
BEGIN
    FOR _pass IN 1..2 LOOP
        SELECT pg_catalog.array_agg(n.id ORDER BY n.distance, n.id) INTO _ids
          FROM (SELECT k.id, k.embedding OPERATOR(extensions.<=>) p_embedding AS distance
                  FROM public.conhecimento_julia AS k
                 WHERE k.embedding_model = p_model
                 ORDER BY k.embedding OPERATOR(extensions.<=>) p_embedding
                 LIMIT p_k) AS n;
        EXIT WHEN coalesce(pg_catalog.cardinality(_ids), 0) >= p_k OR _pass = 2;
        -- Other models' rows took places in the search list (or there are fewer than p_k):
        -- walk the graph on until p_k rows of p_model are found (pgvector >= 0.8). relaxed_order
        -- may return rows slightly out of order: array_agg's ORDER BY ranks them again.
        PERFORM pg_catalog.set_config('hnsw.iterative_scan', 'relaxed_order', true);
    END LOOP;
    RETURN QUERY SELECT u.id, u.n::integer FROM pg_catalog.unnest(_ids) WITH ORDINALITY AS u(id, n);
END;
$$;

-- The distinct lexemes of a question, rarest first: by their share of chunks
-- in ANALYZE's statistics of conhecimento_julia.tsv (most_common_elems); a
-- lexeme not among them is rarer than all of them. NULL when it has none
-- (stop words only).
CREATE OR REPLACE FUNCTION public._knowledge_lexemes(p_query text)
RETURNS text[]
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT pg_catalog.array_agg(l.lexeme ORDER BY coalesce(s.freq, 0), l.lexeme)
      FROM pg_catalog.unnest(pg_catalog.tsvector_to_array(
               pg_catalog.to_tsvector('public.portuguese_unaccent', coalesce(p_query, '')))) AS l(lexeme)
      LEFT JOIN (
          SELECT e.lexeme, e.freq
            FROM pg_catalog.pg_stats AS st,
                 ROWS FROM (pg_catalog.unnest(st.most_common_elems::text::text[]),
                           pg_catalog.unnest(st.most_common_elem_freqs)) AS e(lexeme, freq)
           WHERE st.schemaname = 'public' AND st.tablename = 'conhecimento_julia' AND st.attname = 'tsv'
             AND NOT st.inherited
      ) AS s ON s.lexeme = l.lexeme;
$$;

-- The lexemes as tsquery operands, in their order ('...', quotes and backslashes escaped).
CREATE OR REPLACE FUNCTION public._tsquery_operands(p_lexemes text[])
RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT
SET search_path = ''
AS $$
    SELECT pg_catalog.array_agg(
               '''' || pg_catalog.replace(pg_catalog.replace(l.lexeme, '\', '\\'), '''', '''''') || '''' ORDER BY l.n)
      FROM pg_catalog.unnest(p_lexemes) WITH ORDINALITY AS l(lexeme, n);
$$;

-- Every tier of `p_operands` (quoted lexemes, at most 8) at once: element m is
-- the tsquery of the chunks having at least m of them, which the GIN index
-- answers. It is written factored, at least m of (a, rest) = (a & at least
-- m - 1 of rest) | at least m of rest: the same matches as the OR of every AND
-- of m, with 34 operands instead of 60 for 3 of 6. GIN evaluates the query for
-- every chunk holding a required lexeme, so the broad tiers' scans cost up to
-- ~45 % less (bench/README.md). The rarest operand first: `&` gives up early.
CREATE OR REPLACE FUNCTION public._at_least_tsqueries(p_operands text[])
RETURNS pg_catalog.tsquery[]
LANGUAGE plpgsql IMMUTABLE STRICT
SET search_path = ''
AS $$
DECLARE
    _n integer := pg_catalog.cardinality(p_operands);
    _fewer text[];  -- _fewer[j]: at least m - 1 of operands j.._n, as tsquery text
    _tier text[];   -- _tier[j]: at least m of operands j.._n
    _queries pg_catalog.tsquery[] := '{}';
BEGIN
    FOR _m IN 1.._n LOOP
        _tier := '{}';
        FOR _j IN REVERSE _n - _m + 1..1 LOOP
            _tier[_j] := CASE
                WHEN _m = 1 AND _j = _n THEN p_operands[_j]
                WHEN _m = 1 THEN p_operands[_j] || ' | ' || _tier[_j + 1]
                WHEN _j = _n - _m + 1 THEN p_operands[_j] || ' & ' || _fewer[_j + 1]
                ELSE '(' || p_operands[_j] || ' & (' || _fewer[_j + 1] || ')) | ' || _tier[_j + 1]
            END;
        END LOOP;
        _queries := _queries || _tier[1]::pg_catalog.tsquery;
        _fewer := _tier;
    END LOOP;
    RETURN _queries;
END;
$$;

-- Replaced by the two above (one call each per question instead of one per lexeme and per tier).
DROP FUNCTION IF EXISTS public._tsquery_operand(text);
DROP FUNCTION IF EXISTS public._at_least_tsquery(text[], integer);

-- The `p_k` best full-text matches of a question, ranked from 1, found without
-- ranking every chunk that shares a word with it: candidates are the chunks
-- having all of the question's 6 rarest lexemes, then 5 of them, ... down to
-- one, each tier at most 200 chunks (the first the scan meets), until `p_k` are found;
-- they are ranked by matching all words (websearch syntax), the tier, then
-- ts_rank_cd over every word. ts_rank_cd costs ~4x ts_rank, so it orders only
-- the 2 * `p_k` first by ts_rank (computed as the tier scan reads the rows):
-- the same top `p_k` but for near ties. No rows for a question without lexemes.
CREATE OR REPLACE FUNCTION public._matching_knowledge(p_query text, p_k integer)
RETURNS TABLE (id bigint, rank integer)
LANGUAGE plpgsql STABLE
ROWS 40
SET search_path = ''
AS $$
#variable_conflict use_column
DECLARE
    _lexemes text[] := public._knowledge_lexemes(p_query);
    _operands text[] := public._tsquery_operands(_lexemes);
    _tier_queries pg_catalog.tsquery[] := public._at_least_tsqueries(_operands[1:6]);
    _all_words pg_catalog.tsquery;
    _any_word pg_catalog.tsquery;
    _ids bigint[] := '{}';
    _tiers integer[] := '{}';
    _has_all boolean[] := '{}';
    _first_ranks real[] := '{}';
    _found integer;
BEGIN
    IF _lexemes IS NULL THEN
        RETURN;
    END IF;
    _all_words := pg_catalog.websearch_to_tsquery('public.portuguese_unaccent', p_query);
    _any_word := pg_catalog.array_to_string(_operands, ' | ')::pg_catalog.tsquery;
    FOR _m IN REVERSE pg_catalog.cardinality(_tier_queries)..1 LOOP
        -- No ORDER BY: a broad tier stops after 200 rows instead of fetching every match to sort them.
        SELECT _ids || coalesce(pg_catalog.array_agg(t.id), '{}'),
               _has_all || coalesce(pg_catalog.array_agg(t.has_all), '{}'),
               _first_ranks || coalesce(pg_catalog.array_agg(t.first_rank), '{}'),
               pg_catalog.count(*)
          INTO _ids, _has_all, _first_ranks, _found
          FROM (SELECT k.id, k.tsv @@ _all_words AS has_all, pg_catalog.ts_rank(k.tsv, _any_word) AS first_rank
                  FROM public.conhecimento_julia AS k
                 WHERE k.tsv @@ _tier_queries[_m] AND k.id <> ALL (_ids)
                 LIMIT 200) AS t;
        _tiers := _tiers || pg_catalog.array_fill(_m, ARRAY[_found]);
        EXIT WHEN pg_catalog.cardinality(_ids) >= p_k;
    END LOOP;

    RETURN QUERY
    SELECT b.id, (pg_catalog.row_number() OVER (
               ORDER BY b.has_all DESC, b.tier DESC, pg_catalog.ts_rank_cd(k.tsv, _any_word) DESC, b.id))::integer
      FROM (
          SELECT c.id, c.tier, c.has_all
            FROM ROWS FROM (pg_catalog.unnest(_ids), pg_catalog.unnest(_tiers), pg_catalog.unnest(_has_all),
                            pg_catalog.unnest(_first_ranks)) AS c(id, tier, has_all, first_rank)
           ORDER BY c.has_all DESC, c.tier DESC, c.first_rank DESC, c.id
           LIMIT 2 * p_k
      ) AS b
      JOIN public.conhecimento_julia AS k ON k.id = b.id
     ORDER BY 2
     LIMIT p_k;
END;
$$;

-- The best `p_limit` chunks for a question: the 40 nearest by cosine distance
-- (rows embedded with `p_model` only; skipped when `p_embedding` is NULL) and
-- the 40 best full-text matches (`_matching_knowledge`), each side taken with
-- its own limit, fused by reciprocal rank.
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
BEGIN
    IF p_limit IS NULL OR p_limit < 1 OR p_limit > 100 THEN
        RAISE EXCEPTION 'buscar_conhecimento: limit must be between 1 and 100 (got %)', p_limit USING ERRCODE = 'JU400';
    END IF;
    IF p_embedding IS NOT NULL AND p_model IS NULL THEN
        RAISE EXCEPTION 'buscar_conhecimento: an embedding needs its model name (query %)', p_query
            USING ERRCODE = 'JU400';
    END IF;

    RETURN QUERY
    WITH by_vector AS (
        SELECT v.id, v.rank FROM public._nearest_knowledge(p_embedding, p_model, 40) AS v
    ),
    by_text AS (
        SELECT t.id, t.rank FROM public._matching_knowledge(p_query, 40) AS t
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
    -- Only the best p_limit of the up to 80 fused rows fetch their text.
    SELECT k.id, k.fonte, k.titulo, k.conteudo, k.tags, f.score, f.fts_rank, f.vector_rank
      FROM (SELECT fu.id, fu.score, fu.fts_rank, fu.vector_rank FROM fused AS fu
             ORDER BY fu.score DESC, LEAST(fu.fts_rank, fu.vector_rank), fu.id
             LIMIT p_limit) AS f
      JOIN public.conhecimento_julia AS k ON k.id = f.id
     ORDER BY f.score DESC, LEAST(f.fts_rank, f.vector_rank), k.id;
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
