"""Start real servers (PostgreSQL, ...) on 127.0.0.1 for tests; importable as ``servers.*``."""
