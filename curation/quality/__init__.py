"""Image quality: masks, tissue classes, metrics (MRIQC's for brain MR, CT noise, radiography
proxies, temporal), and the approve/review/exclude decision with its reason."""
from curation.quality.decision import decide, load_config
from curation.quality.metrics import STAGE_VERSION, compute_metrics
from curation.quality.series import assess_series, stage_result

__all__ = ["STAGE_VERSION", "assess_series", "compute_metrics", "decide", "load_config", "stage_result"]
