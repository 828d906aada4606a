"""Re-admitting one quarantined file (the operator's page's button): once its cause is fixed, a run
reads only that file, ingests it, and marks its quarantine record resolved; a re-admit naming another
record, or a hash that is not the record's, is refused."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from curation.catalog import Catalog
from curation.catalog.models import Instance, QuarantineRecord
from curation.pipeline import ingest
from curation.pipeline.ingest import ReadmitError
from curation.store import LocalStore


@pytest.fixture
def world(tmp_path: Path):
    src = tmp_path / "src"
    src.mkdir()
    ct = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    shutil.copy(get_testdata_file("MR_small.dcm"), src / "MR_small.dcm")
    (src / "CT_small.dcm").write_bytes(ct[: len(ct) // 2])  # truncated on the way from the PACS
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    store = LocalStore(tmp_path / "store", fsync=False)
    yield src, ct, catalog, store
    catalog.dispose()


def _record(catalog: Catalog) -> QuarantineRecord:
    with catalog.session() as s:
        record = s.query(QuarantineRecord).one()
        s.expunge(record)
        return record


def test_a_fixed_file_is_read_alone_and_its_record_resolved(world):
    src, ct, catalog, store = world
    first = ingest.run(str(src), store, catalog, {"site": "north", "workers": 1})
    assert first.metrics["files_seen"] == 2 and first.metrics["quarantined"] == 1
    record = _record(catalog)
    assert record.file == "CT_small.dcm" and record.resolved_at is None
    (src / "CT_small.dcm").write_bytes(ct)  # the site sends the file again, whole
    (src / "new_since.dcm").write_bytes(Path(get_testdata_file("rtdose.dcm")).read_bytes())
    again = ingest.run(str(src), store, catalog, {"site": "north", "workers": 1,
                                                 "readmit": {"quarantine_id": record.id, "sha256": record.sha256}})
    assert again.metrics["files_seen"] == 1 and again.metrics["quarantined"] == 0
    assert again.metrics["instances_new"] == 1  # the CT; the file that arrived meanwhile was not read
    resolved = _record(catalog)
    assert resolved.resolved_at is not None and resolved.resolution.startswith("re-admitted")
    with catalog.session() as s:
        assert s.query(Instance).count() == 2


def test_a_file_still_broken_stays_quarantined(world):
    src, _, catalog, store = world
    ingest.run(str(src), store, catalog, {"workers": 1})
    record = _record(catalog)
    again = ingest.run(str(src), store, catalog, {"workers": 1,
                                                 "readmit": {"quarantine_id": record.id, "sha256": record.sha256}})
    assert again.metrics["files_seen"] == 1 and again.metrics["quarantined"] == 1
    assert _record(catalog).resolved_at is None


def test_a_readmit_must_name_a_record_by_its_hash(world):
    src, _, catalog, store = world
    ingest.run(str(src), store, catalog, {"workers": 1})
    record = _record(catalog)
    for wrong in ({"quarantine_id": record.id, "sha256": "0" * 64}, {"quarantine_id": record.id + 1,
                                                                      "sha256": record.sha256}):
        with pytest.raises(ReadmitError, match="names no quarantined ingest file"):
            ingest.run(str(src), store, catalog, {"workers": 1, "readmit": wrong})
