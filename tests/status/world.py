"""A catalog of two sites built by the real pipeline code, plus the review, round and release records
the later DAGs write: what `curate status` and the operator's page are tested on.

- site `north`: pydicom's bundled files and one of every bad input (tests/ingest/corpus.py) ingested,
  then each series de-identified, classified and scored in process (tests/pipeline/flow.py); a person
  decides one of the series sent to review (two: the model's one, and one approved series made
  borderline when the model sends fewer); the de-identification stage quarantines one
  object (recorded as that stage records it: no source, the raw key as the file);
- site `south`: a 12-instance CT series ingested only;
- an annotation round dispatched and partly collected, one analysed (over), and two releases: one
  published, one only built.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pydicom
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from sqlalchemy import select

from curation.catalog import Catalog, Instance, QuarantineRecord, StageRecord, append_event
from curation.catalog.models import AnnotationItem, AnnotationRound, QualityReview, Reading
from curation.ingest import ingest
from curation.reid_vault import put_public_key
from curation.store import Store, open_store
from deid.vault import public_pem
from tests.ingest.corpus import build_bad_corpus, build_many
from tests.pipeline.flow import curate_series

SOUTH_STUDY = "1.2.826.0.1.3680043.8.498.5150"
#: Where the round's deadline falls after its dispatch.
DEADLINE_HOURS = 48


@dataclass
class World:
    catalog: Catalog
    store: Store
    source_root: Path
    reviewed_series: int
    deid_quarantine_id: int
    round_id: int
    dispatched_at: datetime


def build_world(tmp: Path, catalog_url: str) -> World:
    catalog = Catalog(catalog_url)
    store = open_store(str(tmp / "store"))
    put_public_key(store, public_pem(X25519PrivateKey.generate().public_key()))  # the officer's key
    north = tmp / "north"
    build_bad_corpus(north)
    summary = ingest(str(north), catalog, store, site="north", workers=1)
    for sid in summary.series_ids:
        curate_series(catalog, store, sid)
    build_many(tmp / "south", 12)
    for path in sorted((tmp / "south").iterdir()):  # pydicom's CT_small study is north's too: a study of its own
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID = SOUTH_STUDY
        ds.save_as(path, enforce_file_format=True)
    ingest(str(tmp / "south"), catalog, store, site="south", workers=1)

    with catalog.session() as s:
        review = sorted(s.scalars(select(StageRecord.subject_id).where(StageRecord.stage == "quality",
                                                                        StageRecord.status == "review")))
        if len(review) < 2:
            # The bundled files give the model one series to review (an SC with saturated pixels) since
            # issue 19's model approves MR_small; the world needs two, so the first approved series'
            # record says what a borderline decision writes.
            approved = s.scalars(select(StageRecord).where(StageRecord.stage == "quality", StageRecord.status == "ok")
                                 .order_by(StageRecord.subject_id)).first()
            approved.status, approved.reason = "review", "p(degraded) 0.31 in the review band (test world)"
            review = sorted([*review, approved.subject_id])
        assert len(review) >= 2, "the world needs two series sent to review"
        s.add(QualityReview(series_id=review[0], series_key=f"key-{review[0]}", round_id=None, decision="exclude",
                            reason="motion", reviewer="rdr-q", decided_at=datetime.now(timezone.utc)))
        # the de-identification stage's quarantine of one north object (as curation.pipeline.deid records it)
        sha, raw_key = s.execute(select(Instance.sha256, Instance.raw_key).where(Instance.series_id == review[1])).first()
        deid_q = QuarantineRecord(source_id=None, file=raw_key, sha256=sha, raw_key=raw_key, stage="deid",
                                  reason_code="pixel_text_left", reason="burned-in text left after masking")
        s.add(deid_q)
        dispatched = datetime.now(timezone.utc) - timedelta(hours=2)
        rnd = AnnotationRound(project="chest", name="manual__1", kind="labels", schema_name="chest_findings",
                              schema_version=1, state="dispatched", dispatched_at=dispatched,
                              params={"readers_per_item": 2, "deadline_hours": DEADLINE_HOURS})
        done = AnnotationRound(project="chest", name="manual__0", kind="labels", schema_name="chest_findings",
                               schema_version=1, state="analysed", params={"readers_per_item": 1})
        s.add_all([rnd, done])
        s.flush()
        items = [AnnotationItem(round_id=rnd.id, series_id=sid, item_key=f"key-{sid}") for sid in summary.series_ids[:2]]
        s.add_all(items)
        s.flush()
        # one reader has read the first item (two labels of one task count as one reading)
        for label in ("nodule", "effusion"):
            s.add(Reading(round_id=rnd.id, item_id=items[0].id, task_id=7, record="label", label=label,
                          reader="rdr-a", value=0))
        world = World(catalog, store, north, review[0], 0, rnd.id, dispatched)
    with catalog.session() as s:
        world.deid_quarantine_id = s.scalar(select(QuarantineRecord.id).where(QuarantineRecord.stage == "deid"))
    for action, details in [("select", {}), ("build", {}), ("verify", {"ok": True}), ("approval", {"required": False}),
                            ("publish", {"files": 12})]:
        append_event(catalog, stage="release", action=action, subject="chest-ct@1.0.0", details=details)
    append_event(catalog, stage="release", action="build", subject="chest-ct@1.1.0")
    append_event(catalog, stage="release", action="approval", subject="chest-ct@1.1.0",
                 details={"required": True, "chosen": ["Reject"], "by": "owner"})
    return world
