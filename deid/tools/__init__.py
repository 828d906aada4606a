"""Maintenance tools of the de-identification library (run by hand, not at run time)."""
