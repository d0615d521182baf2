"""Alembic migrations of the registry's schema (``env.py`` and ``versions/``), run at start."""
