"""annotation_round: curated series to expert labels and back. Runs when `curate_source` emits
`curated_series`, or by hand with the form below.

Labels round: select the series (kind, final quality decision, modality, body part, a seeded
sample, series already read in the project left out) -> predict (the findings model's suggestions,
stored in the derived zone; skipped without a model) -> dispatch them to the annotation service
project as one round (named after this DAG run, so a re-run registers nothing twice) -> wait in the
triggerer until the round is read or its deadline (no worker slot held; at the deadline the round is
closed and the run goes on with what was read) -> collect the readings -> QC, agreement, consensus
and rewards into the catalog -> emit the `annotations` asset (round id, counts, kappa).

Quality-review round (when a review project is named): the series the quality model sent to
review go to that project; the reviewers' decisions become the series' final quality decisions.

The service is the Airflow connection `curate_annotation` (host = URL, password = pipeline token);
the catalog and store are `curate_default`'s.
"""
from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, Asset, Param

from curation.annotation_schema import available
from curation.vocabulary import QualityDecision
from operators.alerts import alert_args, run_deadline
from operators.assist import PredictOperator
from operators.annotation import (
    AnalyseRoundOperator, CollectRoundOperator, DispatchRoundOperator, SelectRoundOperator, WaitForRoundOperator,
)

CURATED_SERIES = Asset("curated_series")
ANNOTATIONS = Asset("annotations")
#: The longest deadline the form accepts; the wait task's timeout lies beyond it.
MAX_DEADLINE_HOURS = 24 * 30

with DAG(
    dag_id="annotation_round",
    description="Dispatch curated series to annotators, wait for their readings, and turn them into consensus labels",
    schedule=[CURATED_SERIES],
    catchup=False,
    max_active_runs=2,
    tags=["curation", "annotation"],
    deadline=run_deadline(timedelta(days=30)),
    default_args={
        **alert_args(),
        "owner": "curation",
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "execution_timeout": timedelta(hours=2),
    },
    params={
        "project": Param("findings", type="string", minLength=1, title="Annotation project",
                         description="Name of the annotation service project that reads the round (made by its "
                                     "manager with the label schema below; the pipeline token must be scoped to it)."),
        "label_schema": Param("chest_findings_v1", type="string", enum=available(), title="Label schema",
                              description="Versioned label schema from include/annotation/schemas/ "
                                          "(<name>_v<version>); its selection fills what the fields below "
                                          "leave empty."),
        "series_kinds": Param([], type="array", items={"type": "string"}, title="Series kinds",
                              description="Series kinds to read (e.g. CR, DX, T2W, FLAIR, CT); empty: the schema's."),
        "quality_decisions": Param([str(QualityDecision.APPROVE)], type="array",
                                   items={"type": "string", "enum": [str(d) for d in QualityDecision]},
                                   title="Quality decisions",
                                   description="Final quality decisions (a reviewer's where one decided, else the "
                                               "model's) a series must have to be read."),
        "modalities": Param([], type="array", items={"type": "string"}, title="Modalities",
                            description="DICOM modalities to read (CR, DX, CT, MR); empty: any."),
        "body_parts": Param([], type="array", items={"type": "string"}, title="Body parts",
                            description="Body parts to read (CHEST, HEAD, BRAIN); empty: the schema's, else any."),
        "sample_size": Param(None, type=["null", "integer"], minimum=1, title="Sample size",
                             description="How many of the matching series to read, drawn with the seed; empty: all."),
        "seed": Param(0, type="integer", minimum=0, title="Sampling seed",
                      description="Seed of the sample: the same seed draws the same series."),
        "exclude_read": Param(True, type="boolean", title="Leave out series already read",
                              description="Leave out series read in earlier rounds of the project."),
        "readers_per_item": Param(3, type="integer", minimum=1, maximum=50, title="Readers per item",
                                  description="How many readers read each series (k)."),
        "gold_share": Param(0.0, type="number", minimum=0, maximum=1, title="Gold share",
                            description="Share of the round's items that are gold items with a known answer."),
        "deadline_hours": Param(72.0, type="number", exclusiveMinimum=0, maximum=MAX_DEADLINE_HOURS,
                                title="Deadline (hours)",
                                description="Hours from dispatch until the round is closed and analysed with what "
                                            "was read by then."),
        "poll_seconds": Param(60, type="integer", minimum=1, maximum=3600, title="Poll interval (seconds)",
                              description="How often the triggerer asks the service whether the round is read."),
        "bootstrap_resamples": Param(1000, type="integer", minimum=0, maximum=10000, title="Bootstrap resamples",
                                     description="Resamples of the agreement confidence intervals (0: point "
                                                 "estimates only)."),
        "model": Param("chest", type="string", title="Findings model",
                       description="Findings model (an installed entry point of curate.findings_models) whose "
                                   "probabilities, heatmaps and boxes readers see as suggestions and QC uses as "
                                   "pseudo ground truth; empty: no suggestions. Skipped when it is not installed "
                                   "or accepts none of the selected kinds."),
        "review_project": Param("", type="string", title="Quality-review project",
                                description="Name of the service's quality-review project that gets every series "
                                            "the quality model sent to review; empty: no quality-review round."),
        "review_readers_per_item": Param(1, type="integer", minimum=1, maximum=50, title="Reviewers per series",
                                         description="How many people review each series' quality."),
    },
    doc_md=__doc__,
    render_template_as_native_obj=True,
) as dag:
    selection = {"series_kinds": "{{ params.series_kinds }}", "quality_decisions": "{{ params.quality_decisions }}",
                 "modalities": "{{ params.modalities }}", "body_parts": "{{ params.body_parts }}",
                 "size": "{{ params.sample_size }}", "seed": "{{ params.seed }}",
                 "exclude_read": "{{ params.exclude_read }}"}
    wait_timeout = {"execution_timeout": timedelta(hours=MAX_DEADLINE_HOURS + 24)}

    select = SelectRoundOperator(task_id="select", project="{{ params.project }}",
                                 schema="{{ params.label_schema }}", selection=selection)
    predict = PredictOperator(task_id="predict", selected=select.output, model="{{ params.model }}")
    # dispatch runs when predict was skipped (no model), not when select was (nothing to read)
    dispatch = DispatchRoundOperator(task_id="dispatch", selected=select.output, predictions=predict.output,
                                     readers_per_item="{{ params.readers_per_item }}",
                                     gold_share="{{ params.gold_share }}", deadline_hours="{{ params.deadline_hours }}",
                                     trigger_rule="none_failed_min_one_success")
    wait = WaitForRoundOperator(task_id="wait", dispatched=dispatch.output, poll_interval_s="{{ params.poll_seconds }}",
                                **wait_timeout)
    collect = CollectRoundOperator(task_id="collect", waited=wait.output)
    AnalyseRoundOperator(task_id="analyse", collected=collect.output, n_boot="{{ params.bootstrap_resamples }}",
                         outlets=[ANNOTATIONS])

    select_qr = SelectRoundOperator(task_id="select_quality_review", project="{{ params.review_project }}",
                                    schema="quality_review_v1",
                                    selection={"size": None, "seed": "{{ params.seed }}"})
    dispatch_qr = DispatchRoundOperator(task_id="dispatch_quality_review", selected=select_qr.output,
                                        readers_per_item="{{ params.review_readers_per_item }}",
                                        deadline_hours="{{ params.deadline_hours }}")
    wait_qr = WaitForRoundOperator(task_id="wait_quality_review", dispatched=dispatch_qr.output,
                                   poll_interval_s="{{ params.poll_seconds }}", **wait_timeout)
    collect_qr = CollectRoundOperator(task_id="collect_quality_review", waited=wait_qr.output)
    AnalyseRoundOperator(task_id="apply_quality_review", collected=collect_qr.output, outlets=[ANNOTATIONS])
