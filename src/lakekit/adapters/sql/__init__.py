"""SQLAlchemy-backed adapters (the SQL catalog on SQLite or PostgreSQL)."""
