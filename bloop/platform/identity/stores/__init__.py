"""The identity store adapters: `embedded` (SQLite) and `mongo` (MongoDB wire protocol)."""
