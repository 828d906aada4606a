"""A small curated world for release tests: a real catalog (SQLite) and a real LocalStore whose deid
zone holds each series' de-identified files, recorded as the stages record them, plus an analysed
labels round with readings and consensus."""
from __future__ import annotations

import hashlib
import io
from datetime import datetime, timezone

from curation.catalog import Catalog, Instance, Series, Source, StageRecord
from curation.catalog.models import AnnotationItem, AnnotationRound, ConsensusLabel, QualityReview, Reading
from curation.store import Store
from curation.vocabulary import Modality, QualityDecision, SeriesKind, StageStatus, Zone
from deid.engine import Deidentifier

STATUS = {QualityDecision.APPROVE: StageStatus.OK, QualityDecision.REVIEW: StageStatus.REVIEW,
          QualityDecision.EXCLUDE: StageStatus.EXCLUDED}

#: The platform's de-identifier as the release tests' deid stage (fixed secret: same pseudonyms every run).
DEIDENTIFIER = Deidentifier("default", b"release-test-secret!")


def series_uid(n: int) -> str:
    """The de-identified SeriesInstanceUID (the release's series key) of series number n."""
    return f"2.25.{1000 + n}"


def add_series(catalog: Catalog, store: Store, n: int, *, patient: str, kind: str = SeriesKind.CR,
               decision: str = QualityDecision.APPROVE, files: int = 2, site: str = "default",
               modality: str = Modality.CR) -> int:
    """A de-identified, classified and quality-checked series of `files` instances of patient `patient`,
    ingested from site `site`'s source."""
    uid = series_uid(n)
    keys = [f"{patient}/2.25.9{n}/{uid}/2.25.8{n}{i}.dcm" for i in range(files)]
    for i, key in enumerate(keys):
        store.put_bytes(Zone.DEID, key, f"DICM series {n} instance {i}".encode() * 8)
    with catalog.session() as s:
        src = s.query(Source).filter_by(site=site).first() or Source(kind="folder", uri=f"/data/{site}", site=site)
        series = Series(series_instance_uid=f"1.2.840.{n}", modality=str(modality))
        s.add_all([src, series])
        s.flush()
        for i in range(files):
            s.add(Instance(series_id=series.id, sop_instance_uid=f"1.2.840.{n}.{i}", sha256=f"{n:063x}{i}", size=1,
                           raw_key=f"objects/{n}{i}", source_id=src.id, source_path=f"p{n}.dcm", rows=64, columns=64))
        subject = dict(subject_type="series", subject_id=series.id, input_hash="i" * 64, config_hash="c" * 64)
        s.add(StageRecord(stage="deid", stage_version="1", status=StageStatus.OK, **subject, metrics={"outputs": keys}))
        s.add(StageRecord(stage="classify", stage_version="1", status=StageStatus.OK, **subject,
                          metrics={"kind": str(kind), "body_part": "CHEST", "plane": None}))
        s.add(StageRecord(stage="quality", stage_version="1", status=STATUS[decision], **subject,
                          reason=f"model says {decision}",
                          metrics={"decision": {"decision": str(decision)}, "metrics": {"snr": 12.5, "efc": 0.25}}))
        return series.id


def add_round(catalog: Catalog, series_ids: list[int], answers: dict[int, int], name: str = "run-1") -> int:
    """An analysed labels round over `series_ids`: two readers' answers on `nodule` and the consensus
    value `answers[series_id]`."""
    with catalog.session() as s:
        rnd = AnnotationRound(project="chest", name=name, kind="labels", schema_name="chest_findings",
                              schema_version=1, state="analysed", summary={"items": len(series_ids),
                                                                          "fleiss_kappa": 0.61, "rewards": {"x": 1}})
        s.add(rnd)
        s.flush()
        for sid in series_ids:
            n = sid  # item keys follow the catalog's series order in these tests
            item = AnnotationItem(round_id=rnd.id, series_id=sid, item_key=f"key-{n}")
            s.add(item)
            s.flush()
            for t, reader in enumerate(("rdr-a", "rdr-b")):
                s.add(Reading(round_id=rnd.id, item_id=item.id, task_id=sid * 10 + t, record="label", label="nodule",
                              reader=reader, value=answers[sid], confidence=0.8, seconds=12.0))
            s.add(ConsensusLabel(round_id=rnd.id, item_id=item.id, label="nodule", method="dawid_skene",
                                 value=answers[sid], posterior=0.9 if answers[sid] else 0.1, n_readers=2))
        return rnd.id


def set_consensus(catalog: Catalog, round_id: int, series_id: int, value: int) -> None:
    with catalog.session() as s:
        item = s.query(AnnotationItem).filter_by(round_id=round_id, series_id=series_id).one()
        row = s.query(ConsensusLabel).filter_by(round_id=round_id, item_id=item.id).one()
        row.value = value


def human_exclude(catalog: Catalog, series_id: int) -> None:
    with catalog.session() as s:
        s.add(QualityReview(series_id=series_id, series_key=series_uid(series_id), round_id=None,
                            decision=QualityDecision.EXCLUDE, reason="motion", reviewer="rdr-r",
                            decided_at=datetime(2026, 12, 5, tzinfo=timezone.utc)))


def deidentified(catalog: Catalog, store: Store, series_id: int, name: str, files: int) -> list[str]:
    """Put a DX series of patient `name` (with identity and dates) in the raw zone at the keys the
    catalog lists, de-identify it with the platform's de-identifier into the deid zone and make
    the series' deid record list those outputs; returns the released paths, in release order."""
    from tests.release.test_labels import dx_series

    with catalog.session() as s:
        instances = s.query(Instance).filter_by(series_id=series_id).order_by(Instance.raw_key).all()
        keys = []
        for inst, ds in zip(instances, dx_series(files)):
            ds.PatientName, ds.PatientID, ds.PatientBirthDate = name, f"MRN-{name[:3]}-{series_id}", "19600101"
            ds.StudyDate, ds.AccessionNumber, ds.InstitutionName = "20240105", f"ACC{series_id}7731", "St Elsewhere"
            del ds.PatientIdentityRemoved, ds.DeidentificationMethod
            buf = io.BytesIO()
            ds.save_as(buf, enforce_file_format=True)
            raw = buf.getvalue()
            store.put_bytes(Zone.RAW, inst.raw_key, raw)
            inst.sha256 = hashlib.sha256(raw).hexdigest()
            out = DEIDENTIFIER.deidentify(raw)
            assert out.status == "written", out.reason
            keys.append(f"{out.pseudonym}/{out.study_uid}/{out.series_uid}/{out.sop_uid}.dcm")
            store.put_bytes(Zone.DEID, keys[-1], out.data)
        record = s.query(StageRecord).filter_by(stage="deid", subject_id=series_id).one()
        record.metrics = {"outputs": sorted(keys)}
    return ["images/" + k for k in sorted(keys)]
