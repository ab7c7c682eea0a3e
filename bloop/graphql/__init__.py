"""The GraphQL API: one strawberry schema composed from the `graphql` module of each service the
process runs (`schema.py`), served at `/graphql` (`router.py`)."""
