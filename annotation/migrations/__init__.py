"""Alembic migrations of the annotation service."""
