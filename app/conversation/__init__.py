"""How Julia answers: the agent loop (`agent`), the system prompt, history and
message splitting (`prompt`, pure), the model choice (`routing`, pure), the
tools Claude may call (`tools`) and the knowledge base with its embeddings
(`knowledge`, `embeddings`).

May import `core`, `store` and `integrations`. Never imports `http`,
`worker`, `ops` or `devkit`.
"""
