"""Series classification: kind (T1W, T2W, FLAIR, ... CT, CR, US), confidence, the rule that fired,
and attributes (plane, 2D/3D/4D, contrast, derived, body part), from headers only."""
from curation.classify.classifier import STAGE_VERSION, classify_header, classify_series, stage_result
from curation.classify.default_series import choose_default_series
from curation.vocabulary import SeriesKind

__all__ = ["STAGE_VERSION", "SeriesKind", "choose_default_series", "classify_header", "classify_series", "stage_result"]
