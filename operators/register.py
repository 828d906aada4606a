"""Operators of the register stage: bundle the series by study and the studies into batches, then
motion-correct and co-register each study of a batch (`curation.pipeline.studies`,
`curation.pipeline.register`)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from operators.base import CurationOperator

#: At most this many register tasks per run: a task's start-up costs seconds, a CT study's
#: registration often less, so a site's ~90 studies run as batches (as the per-series stages do).
MAX_REGISTER_TASKS = 24


def balanced_batches(studies: Sequence[dict[str, Any]], cost: Sequence[float],
                     max_tasks: int = MAX_REGISTER_TASKS) -> list[list[dict[str, Any]]]:
    """`studies` in at most `max_tasks` batches of near-equal estimated cost (largest first into the
    lightest batch), each batch in the studies' own order; one study per batch while there are no more
    studies than tasks. Why balanced, not contiguous: an MR study costs ten CT studies, and the slots of
    the registration pool should finish together."""
    k = min(len(studies), max(1, int(max_tasks)))
    bins: list[list[int]] = [[] for _ in range(k)]
    load = [0.0] * k
    for i in sorted(range(len(studies)), key=lambda i: (-cost[i], i)):
        b = min(range(k), key=lambda j: (load[j], j))
        bins[b].append(i)
        load[b] += cost[i]
    return [[studies[i] for i in sorted(b)] for b in sorted(bins, key=lambda b: -sum(cost[i] for i in b))]


class StudiesOperator(BaseOperator):
    """Bundle the quality tasks' references (batches of series) by study, the unit of co-registration,
    and the studies into batches, one register task each; only studies with a series the register
    stage registers are kept."""

    template_fields: Sequence[str] = ("results",)

    def __init__(self, *, results: Sequence[dict[str, Any]], max_tasks: int = MAX_REGISTER_TASKS,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.results, self.max_tasks = results, max_tasks

    def execute(self, context: Any) -> list[list[dict[str, Any]]]:
        from curation.pipeline.ingest import series_of
        from curation.pipeline.register import registrable
        from curation.pipeline.studies import group_by_study

        grouped = group_by_study(series_of(self.results))
        studies = [s for s in grouped if registrable(s)]
        batches = balanced_batches([s.to_xcom() for s in studies], [len(registrable(s)) for s in studies],
                                   self.max_tasks)
        self.log.info("%d studies to register in %d tasks (%d without a volume to register)", len(studies),
                      len(batches), len(grouped) - len(studies))
        return batches


class RegisterOperator(CurationOperator):
    """Motion correction and co-registration of a batch of studies, one after the other; derived
    series go to the derived zone. Every study is tried even when one fails (each result is recorded
    in the catalog as it is made), then the task fails: its retry reuses the finished studies' results
    and redoes only the failed ones."""

    template_fields: Sequence[str] = ("config",)

    def __init__(self, *, studies: Sequence[dict[str, Any]] | dict[str, Any],
                 config: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.studies = [studies] if isinstance(studies, dict) else list(studies)
        self.config = config

    def execute(self, context: Any) -> list[dict[str, Any]]:
        from curation.pipeline import StudyRef, register

        hook = self.hook()
        store, catalog = hook.get_store(), hook.get_catalog()
        out: list[dict[str, Any]] = []
        failed: list[tuple[str, Exception]] = []
        for n, study in enumerate(map(StudyRef.from_xcom, self.studies), 1):
            try:
                ref = register.run(study, store, catalog, self.config).ref
            except Exception as exc:  # noqa: BLE001 - raised below, after the rest of the batch
                self.log.error("register: study %d of %d failed: %s", n, len(self.studies), type(exc).__name__)
                failed.append((study.study, exc))
                continue
            self.log.info("register: study %d of %d: %s, %s derived series (fixed image: %s)%s", n,
                          len(self.studies), ref.status, ref.derived, ref.fixed_reason,
                          " [result reused]" if ref.reused else "")
            out.append(ref.to_xcom())
        if failed:
            raise RuntimeError(f"{len(failed)} of {len(self.studies)} studies failed") from failed[0][1]
        return out
