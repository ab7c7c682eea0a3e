"""The learning store adapters: Neo4j (real) and SQLite (embedded)."""
