-- Knowledge retrieval (issue 18): the HNSW graph of conhecimento_julia's
-- embeddings built with ef_construction 512 (0017 used 256). A better graph
-- finds the exact 5 nearest as often with a shorter search list: at 10k chunks
-- of bench/retrieval.py, recall@5 0.96 at hnsw.ef_search 120 (0.94 with the
-- 256 graph, which needed 200 for 0.96), so a search costs about a quarter less.
-- Same name, same operator class; m stays 16 (m 32 recalled less and cost more).
DROP INDEX IF EXISTS public.conhecimento_embedding_idx;
CREATE INDEX conhecimento_embedding_idx ON public.conhecimento_julia
    USING hnsw (embedding extensions.vector_cosine_ops) WITH (m = 16, ef_construction = 512);
