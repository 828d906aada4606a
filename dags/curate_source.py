"""curate_source: a curator starts it on a source; it ingests, then for every series de-identifies,
classifies and scores quality, then per study motion-corrects and co-registers, summarises, and
emits the `curated_series` asset. Defaults (the site) come from `curation.settings` (CURATE_SITE)."""
from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, Asset, Param

from curation.settings import settings
from operators.alerts import alert_args, run_deadline
from operators.classify import ClassifyOperator
from operators.deid import DeidOperator
from operators.ingest import IngestOperator
from operators.quality import QualityOperator
from operators.register import RegisterOperator, StudiesOperator
from operators.summary import CurationSummaryOperator

CURATED_SERIES = Asset("curated_series")
#: Pools of the heavy stages (include/airflow/pools.json, created by `make install`): they cap OCR and
#: registration across all runs, so several sites curated at once cannot exhaust a worker's memory.
OCR_POOL, REGISTRATION_POOL = "curate_ocr", "curate_registration"

with DAG(
    dag_id="curate_source",
    description="Ingest a hospital source into the catalog and curate every series",
    schedule=None,
    catchup=False,
    max_active_runs=4,
    tags=["curation"],
    deadline=run_deadline(timedelta(hours=6)),
    default_args={
        **alert_args(),
        "owner": "curation",
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "execution_timeout": timedelta(hours=6),
    },
    params={
        "source": Param(
            "",
            type="string",
            minLength=1,
            title="Source",
            description="Where the images are: a folder on the worker (/data/export), an archive "
                        "(/data/export.zip, .tar.gz), an S3 prefix (s3://bucket/prefix) or a DICOMweb server "
                        "(dicomweb+https://pacs.example.org/dicom-web).",
        ),
        "site": Param(settings().site, type="string", minLength=1, title="Site",
                      description="Name of the hospital or site the data comes from (keys patients per site)."),
        "exclude": Param([], type="array", items={"type": "string"}, title="Exclude",
                         description="Glob patterns of files to skip inside the source (e.g. Thumbs.db, "
                                     "*.txt). Matched against the path inside the source and the file name."),
        "registration": Param({}, type="object", title="Registration settings",
                              description="Overrides of include/registration/default.yaml, e.g. "
                                          '{"coregister": {"transform": "affine"}} to rerun a study with other '
                                          "hyperparameters (transform, metric, levels, sampling, iterations)."),
        "readmit": Param({}, type="object", title="Re-admit one quarantined file",
                         description="Set by the operator's page (Browse > Curation): {quarantine_id, sha256} of one "
                                     "ingest-quarantined file of this source to read again once its cause is fixed; "
                                     "only that file is read. Empty: the whole source."),
        "deid_profile": Param("default", type="string", title="De-identification profile",
                              description="Name of a profile in include/deid/ (default: Basic + Clean "
                                          "Descriptors + Modified Dates + Patient Characteristics)."),
    },
    doc_md=__doc__,
    render_template_as_native_obj=True,
) as dag:
    ingest = IngestOperator(
        task_id="ingest",
        source="{{ params.source }}",
        site="{{ params.site }}",
        exclude="{{ params.exclude }}",
        readmit="{{ params.readmit }}",
    )
    # One mapped task per batch of series (ingest cuts them, `curation.pipeline.ingest.batches`): a task's
    # start-up costs seconds, a series' work often less. Each series keeps its record in the catalog.
    # The heavy stages run at most CURATE_STAGE_TASKS_PER_RUN tasks of one run at once (default 2, this
    # project's 2-core machine): a run cannot take every slot of a shared fleet; raise it with the cores.
    per_run = settings().stage_tasks_per_run
    deid = DeidOperator.partial(task_id="deid", profile="{{ params.deid_profile }}", pool=OCR_POOL,
                                max_active_tis_per_dagrun=per_run).expand(refs=ingest.output)
    classify = ClassifyOperator.partial(task_id="classify").expand(refs=deid.output)
    quality = QualityOperator.partial(task_id="quality", max_active_tis_per_dagrun=per_run).expand(
        refs=classify.output)
    # Studies in balanced batches (one register task each, as the per-series stages batch series); on 2
    # cores two at once: a study's Python part (reading, writing ~500 derived files) holds one core, so a
    # second study keeps the other busy; the pool still caps registration across runs.
    studies = StudiesOperator(task_id="group_studies", results=quality.output)
    register = RegisterOperator.partial(task_id="register", config="{{ params.registration }}",
                                        pool=REGISTRATION_POOL,
                                        max_active_tis_per_dagrun=per_run).expand(studies=studies.output)
    # none_failed: a site with no study to register (radiographs only) skips register, and must still be
    # summarised and announce its curated series
    summary = CurationSummaryOperator(task_id="summary", results=quality.output, registrations=register.output,
                                      outlets=[CURATED_SERIES], trigger_rule="none_failed")
