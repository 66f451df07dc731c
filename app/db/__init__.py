"""PostgreSQL, the system of record: every statement lives in queries.sql."""
