"""Reproducible training of the shipped models (series kind, MR quality) and calibration of the rule-based
quality thresholds, from synthetic sites. Not imported by the libraries: run by `curate train` and by hand."""
