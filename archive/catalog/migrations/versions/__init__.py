"""Revisions of the catalog schema, oldest first (loaded by Alembic, not imported)."""
