"""Full-text search over a tenant's published courses and lessons.

The index is tantivy (a Rust search library, the engine behind Quickwit) through its Python
binding, embedded in the content process: BM25 ranking with a boosted title, phrase queries,
facet counts from its aggregations, snippets with highlights, millisecond queries, and no server
to run. MongoDB text indexes are not an option (FerretDB has none), and a search server
(Elasticsearch, Meilisearch) would be one more thing to operate for what one process's directory
does.

Each content process keeps its own index under `BLOOP_DATA_DIR/search` and feeds it from
`content.events` through a consumer group of its own (named after the index, so every process
reads every partition). A new index is first built from the content store's published courses.
"""
