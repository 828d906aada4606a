"""torch's intra-op threads kept within the platform's OpenMP limit.

include/airflow/env.sh sets OMP_THREAD_LIMIT=1 for every task (one tesseract thread per
de-identification task). torch asking OpenMP for more threads than that limit allows hangs in
autograd's backward pass, i.e. in every Grad-CAM and every training step; so each place that runs
torch backward calls `within_openmp_limit()` first.
"""
from __future__ import annotations

import os
import sys


def within_openmp_limit() -> None:
    """Lower torch's intra-op threads to OMP_THREAD_LIMIT when torch is imported and uses more."""
    torch = sys.modules.get("torch")
    limit = os.environ.get("OMP_THREAD_LIMIT", "")
    if torch is not None and limit.isdigit() and int(limit) > 0 and torch.get_num_threads() > int(limit):
        torch.set_num_threads(int(limit))
