"""Synthetic hospital: deterministic DICOM/PNG/JPEG/NIfTI exports with a ground-truth sidecar
(see README.md in this folder for the layout and the ground-truth schema)."""
from synth.site import generate_site, summarize

__all__ = ["generate_site", "summarize"]
