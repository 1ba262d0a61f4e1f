-- Knowledge retrieval (issue 18): the HNSW graph of conhecimento_julia's
-- embeddings built with a wider candidate list (ef_construction 256, pgvector's
-- default is 64), so that searching it with hnsw.ef_search 200 finds ~0.95 of
-- the exact 5 nearest at 10k chunks instead of ~0.85-0.88 (bench/retrieval.py).
-- Same name, same operator class; m stays 16 (the default).
DROP INDEX IF EXISTS public.conhecimento_embedding_idx;
CREATE INDEX conhecimento_embedding_idx ON public.conhecimento_julia
    USING hnsw (embedding extensions.vector_cosine_ops) WITH (m = 16, ef_construction = 256);
