"""The quiz attempt store adapters: `embedded` (SQLite) and `mongo` (MongoDB wire protocol)."""
