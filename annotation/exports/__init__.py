"""Exports of a project's readings: CSV, JSON, DICOM SR (TID 1500) and DICOM SEG."""
