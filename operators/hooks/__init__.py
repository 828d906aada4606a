"""Hooks own the connections: the catalog database and the store."""
