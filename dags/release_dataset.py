"""release_dataset: a numbered, immutable release of curated series with their labels. Runs by hand
with the form below, or when `annotation_round` emits `annotations`.

select (the series of the chosen kinds, final quality decisions, rounds and sites; the version: the bump of
the newest published one, or the one named) -> build into `releases/<name>/.staging-<version>/` ->
verify the staging copy (every checksum against its manifest; labels by dciodvfy and their references;
images by the de-identification verifier's rules; no raw-zone object) -> approval by a data owner in
Airflow's Required Actions (or over the REST API's HITL endpoint) unless the form turns it off ->
publish (manifest last, created only if absent; refused when the version exists or another build of it
is being published) -> emit `dataset_release` (name, version,
manifest SHA-256, counts). Each step appends to the lineage ledger. A rejected release stays in
staging unpublished. The catalog and store are `curate_default`'s.
"""
from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, Asset, Param

from curation.vocabulary import QualityDecision
from operators.alerts import alert_args, run_deadline
from operators.release import (
    ApprovalGateOperator, BuildReleaseOperator, OwnerApprovalOperator, PublishReleaseOperator, SelectReleaseOperator,
    VerifyReleaseOperator,
)

ANNOTATIONS = Asset("annotations")
DATASET_RELEASE = Asset("dataset_release")
#: curation.release.version.BUMPS, curation.release.build.FORMATS and curation.release.splits.DEFAULT_RATIOS,
#: spelled here because importing curation.release at parse time loads its readers (pandas, the catalog);
#: tests/dags/test_release_dataset.py checks they agree.
BUMPS = ("major", "minor", "patch")
FORMATS = ("dicom", "nifti")
DEFAULT_SPLIT_RATIOS = {"train": 0.7, "validation": 0.15, "test": 0.15}
#: How long a data owner has to answer before the approval task fails (nothing is published).
APPROVAL_WINDOW = timedelta(days=7)

with DAG(
    dag_id="release_dataset",
    description="Build, verify, approve and publish an immutable, numbered dataset release",
    schedule=[ANNOTATIONS],
    catchup=False,
    max_active_runs=1,
    tags=["curation", "release"],
    deadline=run_deadline(APPROVAL_WINDOW + timedelta(days=1)),
    default_args={
        **alert_args(),
        "owner": "curation",
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "execution_timeout": timedelta(hours=6),
    },
    params={
        "name": Param("dataset", type="string", pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$", title="Release name",
                      description="Name of the dataset (1-64 characters of a-z 0-9 . _ -); its versions live under "
                                  "releases/<name>/."),
        "bump": Param("minor", type="string", enum=list(BUMPS), title="Version bump",
                      description="Which part of the newest published version to raise: major (selection rules "
                                  "or label schema changed), minor (series added or removed), patch (corrections). "
                                  "The first release of a name is 1.0.0."),
        "version": Param("", type="string", pattern=r"^$|^\d+\.\d+\.\d+$", title="Explicit version",
                         description="MAJOR.MINOR.PATCH to build instead of the bump; empty: the bump. A version "
                                     "already published is refused with nothing changed."),
        "kinds": Param([], type="array", items={"type": "string"}, title="Series kinds",
                       description="Series kinds to release (e.g. CR, DX, T2W, FLAIR, CT); empty: any."),
        "decisions": Param([str(QualityDecision.APPROVE)], type="array", minItems=1,
                           items={"type": "string", "enum": [str(d) for d in QualityDecision]},
                           title="Final quality decisions",
                           description="Final quality decisions (a reviewer's where one decided, else the model's) "
                                       "a series must have to be released."),
        "rounds": Param([], type="array", items={"type": "integer"}, title="Annotation rounds",
                        description="Catalog ids of the labels rounds whose series (and readings) the release holds; "
                                    "empty: every series selected above, with the labels rounds that read them."),
        "sites": Param([], type="array", items={"type": "string"}, title="Sites",
                       description="Sites (the `site` each source was ingested with) whose series to release; "
                                   "empty: every site."),
        "split_ratios": Param(DEFAULT_SPLIT_RATIOS, type="object", title="Split ratios",
                              description="Target share of patients per split, summing to 1 (a patient's series "
                                          "share its split; a patient keeps it in later versions)."),
        "split_seed": Param(0, type="integer", minimum=0, title="Split seed",
                            description="Key of the patient split hash: changing it deals patients anew "
                                        "(a major version)."),
        "formats": Param([FORMATS[0]], type="array", minItems=1, items={"type": "string", "enum": list(FORMATS)},
                         title="Image formats",
                         description="dicom (always: labels reference it and verify checks it) and, with nifti, a "
                                     "NIfTI conversion of each DICOM volume beside it."),
        "require_approval": Param(True, type="boolean", title="Require a data owner's approval",
                                  description="Wait for a data owner to approve the verified build in Required "
                                              "Actions before publishing; off only for demos and tests."),
    },
    doc_md=__doc__,
    render_template_as_native_obj=True,
) as dag:
    release = {k: "{{ params.%s }}" % k
               for k in ("name", "bump", "version", "kinds", "decisions", "rounds", "sites", "split_ratios",
                         "split_seed", "formats")}
    quick_retry = {"retries": 1, "retry_delay": timedelta(seconds=5)}  # refusals fail at once, without retries

    select = SelectReleaseOperator(task_id="select", release=release, **quick_retry)
    build = BuildReleaseOperator(task_id="build", selected=select.output)
    verify = VerifyReleaseOperator(task_id="verify", staged=build.output)
    gate = ApprovalGateOperator(task_id="approval_required", require_approval="{{ params.require_approval }}",
                                approval_task_id="owner_approval", publish_task_id="publish")
    approval = OwnerApprovalOperator(
        task_id="owner_approval",
        staged=verify.output,
        subject="Publish {{ ti.xcom_pull(task_ids='verify')['name'] }}"
                "@{{ ti.xcom_pull(task_ids='verify')['version'] }}?",
        body="The build is verified in staging at `{{ ti.xcom_pull(task_ids='verify')['prefix'] }}`.\n\n"
             "Manifest SHA-256: `{{ ti.xcom_pull(task_ids='verify')['manifest_sha256'] }}`\n\n"
             "Counts: `{{ ti.xcom_pull(task_ids='verify')['counts'] }}`\n\n"
             "Approve to publish it immutably; reject to leave it unpublished.",
        response_timeout=APPROVAL_WINDOW,
    )
    publish = PublishReleaseOperator(task_id="publish", staged=verify.output,
                                     approval="{{ ti.xcom_pull(task_ids='owner_approval') }}",
                                     trigger_rule="none_failed_min_one_success", outlets=[DATASET_RELEASE])
    verify >> gate >> [approval, publish]
    approval >> publish
