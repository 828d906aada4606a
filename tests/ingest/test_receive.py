"""The DICOM C-STORE receiver (`curate receive`), driven by real senders: pynetdicom's storescu and
SCU API, a real Orthanc, a sender killed mid-series, a receiver killed before a series was complete.
Every received object must end as `curate ingest` would leave it (same catalog rows, same quarantine
reasons), and each complete series must start curation exactly once, by a request that names it
without PHI."""
from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pydicom
import pydicom.filereader
import pydicom.filewriter
import pytest
import requests
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from sqlalchemy import func, select

from curation.catalog import Catalog, Instance, QuarantineRecord, Series, Source, verify_chain
from curation.ingest import ingest
from curation.receive import AirflowTrigger, Intake, Receiver, ReceiverConfig
from curation.receive.intake import INCOMING, SERIES, TRIGGERED
from curation.store import Zone, open_store
from tests.fixtures.ports import free_ports

REPO = Path(__file__).resolve().parents[2]
PATIENT_NAME = "Receive^Testpatient"
PATIENT_ID = "RCV-PID-0042"
# Files of pydicom's test data, one per transfer syntax the receiver accepts.
BUNDLED = ("CT_small.dcm", "MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "MR_small_RLE.dcm",
           "MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm", "JPEG2000.dcm", "SC_rgb_jpeg_dcmtk.dcm",
           "JPEG-lossy.dcm", "JPEGLSNearLossless_08.dcm")


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """Poll until `condition()` is truthy; fail naming `what` (a deadline, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def series_instance(series_uid: str, study_uid: str, number: int, source: str = "CT_small.dcm") -> Dataset:
    """A copy of a bundled file as instance `number` of the given series, with planted PHI."""
    ds = pydicom.dcmread(get_testdata_file(source))
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.InstanceNumber = number
    ds.PatientName, ds.PatientID = PATIENT_NAME, PATIENT_ID
    return ds


def a_series(n: int, source: str = "CT_small.dcm") -> list[Dataset]:
    study, series = generate_uid(), generate_uid()
    return [series_instance(series, study, i + 1, source) for i in range(n)]


def write_corpus(folder: Path) -> list[Path]:
    """The bundled files with fresh UIDs (several share a SOPInstanceUID), each in its own transfer
    syntax, plus a deflated copy of CT_small."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in BUNDLED:
        ds = pydicom.dcmread(get_testdata_file(name))
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.SeriesInstanceUID = generate_uid()
        paths.append(folder / name)
        ds.save_as(paths[-1], enforce_file_format=True)
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    paths.append(folder / "CT_small_deflate.dcm")
    ds.save_as(paths[-1], enforce_file_format=True)
    return paths


def send(port: int, datasets: list[Dataset | Path], *, calling: str = "PACS", called: str = "CURATE",
         tls: tuple[ssl.SSLContext, str] | None = None) -> list[int]:
    """C-STORE each item over one association (pynetdicom SCU); returns the statuses."""
    ae = AE(ae_title=calling)
    seen = set()
    for item in datasets:
        if isinstance(item, Path):
            meta = pydicom.filereader.read_file_meta_info(item)
            key = (meta.MediaStorageSOPClassUID, meta.TransferSyntaxUID)
        else:
            key = (item.SOPClassUID, item.file_meta.TransferSyntaxUID)
        if key not in seen:
            seen.add(key)
            ae.add_requested_context(*key)
    assoc = ae.associate("127.0.0.1", port, ae_title=called, tls_args=tls)
    assert assoc.is_established, "association refused"
    try:
        return [int(assoc.send_c_store(item).Status) for item in datasets]
    finally:
        assoc.release()


def counts(catalog: Catalog) -> dict[str, int]:
    with catalog.session() as s:
        return {m.__tablename__: s.scalar(select(func.count()).select_from(m))
                for m in (Series, Instance, QuarantineRecord)}


class World:
    """A catalog, a store and a spool in a temp folder, and receivers started on them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.catalog = Catalog(f"sqlite:///{root / 'catalog.sqlite'}")
        self.store = open_store(str(root / "store"))
        self.spool = root / "spool"
        self.receivers: list[Receiver] = []

    def intake(self) -> Intake:
        return Intake(self.catalog, self.store, self.spool, site="site-a", receiver_aet="CURATE")

    def receiver(self, trigger: AirflowTrigger | None = None, **config: Any) -> Receiver:
        config = {"host": "127.0.0.1", "port": 0, "quiet_seconds": 3600.0, "check_every": 0.1} | config
        receiver = Receiver(ReceiverConfig(**config), self.intake(), trigger).start()
        self.receivers.append(receiver)
        return receiver

    def raw_objects(self) -> set[str]:
        return set(self.store.list(Zone.RAW))


@pytest.fixture()
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    for receiver in w.receivers:
        receiver.stop()


class FakeAirflow(ThreadingHTTPServer):
    """A local HTTP server answering the two Airflow REST calls the receiver makes, recording them."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.run_ids: set[str] = set()
        super().__init__(("127.0.0.1", 0), _FakeAirflowHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def posted(self, path_end: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == "POST" and r["path"].endswith(path_end)]


class _FakeAirflowHandler(BaseHTTPRequestHandler):
    server: FakeAirflow

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        self.server.requests.append({"method": "GET", "path": self.path, "auth": self.headers.get("Authorization")})
        if self.path.startswith("/api/v2/assets"):
            self._answer(200, {"assets": [{"id": 7, "name": "received_series", "uri": "received_series"}],
                               "total_entries": 1})
        else:
            self._answer(404, {"detail": "not found"})

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        record = {"method": "POST", "path": self.path, "auth": self.headers.get("Authorization"), "body": body}
        self.server.requests.append(record)
        if self.path == "/auth/token":
            ok = body == {"username": "receiver", "password": "s3cret"}
            self._answer(201 if ok else 401, {"access_token": "tok"} if ok else {"detail": "bad credentials"})
        elif record["auth"] != "Bearer tok":
            self._answer(401, {"detail": "not authenticated"})
        elif self.path.endswith("/dagRuns"):
            if body["dag_run_id"] in self.server.run_ids:
                self._answer(409, {"detail": "exists"})
            else:
                self.server.run_ids.add(body["dag_run_id"])
                self._answer(200, {"dag_run_id": body["dag_run_id"], "state": "queued"})
        elif self.path == "/api/v2/assets/events":
            self._answer(200, {"id": 1, "asset_id": body["asset_id"]})
        else:
            self._answer(404, {"detail": "not found"})


@pytest.fixture()
def airflow_api() -> Iterator[FakeAirflow]:
    server = FakeAirflow()
    yield server
    server.shutdown()
    server.server_close()


def assert_no_phi(text: str, datasets: list[Dataset]) -> None:
    for value in [PATIENT_NAME, PATIENT_ID] + [str(v) for ds in datasets
                                                for v in (ds.SOPInstanceUID, ds.SeriesInstanceUID, ds.StudyInstanceUID)]:
        assert value not in text, "PHI or a UID of the raw zone leaked"


# -- tests ------------------------------------------------------------------------------------------

def test_storescu_every_transfer_syntax_lands_as_curate_ingest_would_leave_it(world: World, tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus")
    receiver = world.receiver()
    cmd = [sys.executable, "-m", "pynetdicom", "storescu", "127.0.0.1", str(receiver.port), *map(str, corpus),
           "-aet", "PACS", "-aec", "CURATE", "-cx"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert receiver.stats["received"] == len(corpus) and receiver.stats["failed"] == 0

    # The same files through `curate ingest`'s function into a second catalog: the same rows and verdicts.
    reference = Catalog(f"sqlite:///{tmp_path / 'reference.sqlite'}")
    summary = ingest(str(tmp_path / "corpus"), reference, open_store(str(tmp_path / "ref-store")), workers=1,
                     site="site-a")

    def rows(catalog: Catalog) -> set[tuple[Any, ...]]:
        with catalog.session() as s:
            return set(s.execute(select(Instance.sop_instance_uid, Instance.transfer_syntax_uid, Instance.rows,
                                        Instance.columns, Instance.number_of_frames, Instance.format,
                                        Series.modality, Series.sop_class_uid).join(Series)).all())

    def verdicts(catalog: Catalog) -> list[str]:
        with catalog.session() as s:
            return sorted(s.scalars(select(QuarantineRecord.reason_code)))

    assert rows(world.catalog) == rows(reference)
    assert len(rows(reference)) == summary.instances_new
    assert verdicts(world.catalog) == verdicts(reference)
    assert verify_chain(world.catalog).ok
    with world.catalog.session() as s:
        assert s.scalars(select(Source.uri)).all() == ["dimse://CURATE/PACS"]
        for raw_key, sha in s.execute(select(Instance.raw_key, Instance.sha256)):
            # The raw zone holds the Part 10 file as received (file meta from the association), by its hash.
            data = world.store.get_bytes(Zone.RAW, raw_key)
            assert data[128:132] == b"DICM" and hashlib.sha256(data).hexdigest() == sha
            assert list((world.spool / SERIES).glob(f"*/{sha}.dcm"))


def test_the_same_instance_sent_twice_is_one_raw_object_and_one_row(world: World) -> None:
    receiver = world.receiver()
    instance = a_series(1)[0]
    assert send(receiver.port, [instance]) == [0x0000]
    assert send(receiver.port, [instance, instance]) == [0x0000, 0x0000]
    assert counts(world.catalog) == {"series": 1, "instance": 1, "quarantine_record": 0}
    assert len(world.raw_objects()) == 1
    assert receiver.stats["new"] == 1 and receiver.stats["known"] == 2
    assert len(list((world.spool / SERIES).glob("*/*.dcm"))) == 1


def test_the_same_series_from_four_associations_at_once_is_one_row_per_instance(world: World) -> None:
    receiver = world.receiver()
    series = a_series(5)
    results: list[list[int]] = []
    senders = [threading.Thread(target=lambda: results.append(send(receiver.port, series))) for _ in range(4)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(timeout=120)
    assert results == [[0x0000] * 5] * 4
    assert counts(world.catalog) == {"series": 1, "instance": 5, "quarantine_record": 0}
    assert len(world.raw_objects()) == 5
    assert len(list((world.spool / SERIES).glob("*/*.dcm"))) == 5
    assert not list((world.spool / INCOMING).glob("*/*"))
    assert receiver.stats["new"] == 5 and receiver.stats["known"] == 15


def test_a_corrupt_dataset_is_quarantined_refused_and_the_association_goes_on(world: World, caplog) -> None:
    receiver = world.receiver()
    good1, truncated, no_series, good2 = a_series(4)
    truncated.Rows, truncated.Columns = 1024, 1024  # Pixel Data now holds far fewer bytes than declared
    del no_series.SeriesInstanceUID
    conflicting = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    conflicting.StudyInstanceUID, conflicting.SeriesInstanceUID = good1.StudyInstanceUID, good1.SeriesInstanceUID
    conflicting.SOPInstanceUID = conflicting.file_meta.MediaStorageSOPInstanceUID = good1.SOPInstanceUID
    conflicting.PatientName = "Other^Bytes"  # same SOPInstanceUID as good1, other content
    with caplog.at_level("DEBUG", logger="curation"):
        statuses = send(receiver.port, [good1, truncated, no_series, conflicting, good2])
    assert statuses == [0x0000, 0xC000, 0xC000, 0xC000, 0x0000]
    with world.catalog.session() as s:
        records = s.execute(select(QuarantineRecord.reason_code, QuarantineRecord.raw_key,
                                   QuarantineRecord.reason)).all()
        assert sorted(r.reason_code for r in records) == ["conflicting_duplicate", "missing_attribute", "truncated"]
        for record in records:
            assert world.store.exists(Zone.RAW, record.raw_key), "a quarantined object's bytes were lost"
        assert "SeriesInstanceUID" in next(r.reason for r in records if r.reason_code == "missing_attribute")
        assert s.scalar(select(func.count()).select_from(Instance)) == 2
    # Quarantined objects leave the spool (their bytes are in the raw zone); nothing waits in incoming.
    assert len(list((world.spool / SERIES).glob("*/*.dcm"))) == 2
    assert not list((world.spool / INCOMING).glob("*/*"))
    assert receiver.stats["quarantined"] == 3
    assert_no_phi(caplog.text, [good1, truncated, good2])


def test_a_dataset_of_garbage_bytes_is_quarantined_as_ingest_would(world: World, tmp_path: Path, monkeypatch) -> None:
    from pynetdicom import _config

    receiver = world.receiver()
    good = a_series(1)[0]
    meta = pydicom.dcmread(get_testdata_file("CT_small.dcm")).file_meta
    meta.MediaStorageSOPInstanceUID = generate_uid()
    garbage = tmp_path / "garbage.dcm"
    buffer = io.BytesIO()
    pydicom.filewriter.write_file_meta_info(buffer, meta)
    garbage.write_bytes(b"\0" * 128 + b"DICM" + buffer.getvalue() + bytes(range(256)) * 64)
    # Send the file's dataset bytes as they are (pynetdicom would otherwise parse and re-encode them).
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)
    assert send(receiver.port, [garbage, good]) == [0xC000, 0x0000]
    with world.catalog.session() as s:
        (received,) = s.execute(select(QuarantineRecord.reason_code, QuarantineRecord.reason)).all()
    # The verdict `curate ingest` gives the same bytes as a file (the receiver's Part 10 has the same
    # file meta and dataset bytes as what was sent).
    (tmp_path / "alone").mkdir()
    garbage.rename(tmp_path / "alone" / garbage.name)
    reference = ingest(str(tmp_path / "alone"), Catalog(f"sqlite:///{tmp_path / 'ref.sqlite'}"),
                       open_store(str(tmp_path / "ref-store")), workers=1)
    (expected,) = reference.quarantined
    assert tuple(received) == (expected["reason_code"], expected["reason"])
    assert counts(world.catalog)["instance"] == 1


def test_an_unknown_calling_ae_title_is_refused(world: World) -> None:
    receiver = world.receiver(accept_aets=("PACS",))
    intruder = AE(ae_title="INTRUDER")
    intruder.add_requested_context("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2.1")
    assoc = intruder.associate("127.0.0.1", receiver.port, ae_title="CURATE")
    assert assoc.is_rejected
    wrong_called = AE(ae_title="PACS")
    wrong_called.add_requested_context("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2.1")
    assert wrong_called.associate("127.0.0.1", receiver.port, ae_title="NOTCURATE").is_rejected
    assert send(receiver.port, a_series(1), calling="PACS") == [0x0000]
    assert receiver.stats["associations_refused"] == 2
    assert counts(world.catalog)["instance"] == 1


def test_associations_beyond_the_limit_are_refused_until_one_ends(world: World) -> None:
    receiver = world.receiver(max_associations=1)
    first = AE(ae_title="PACS")
    first.add_requested_context("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2.1")
    held = first.associate("127.0.0.1", receiver.port, ae_title="CURATE")
    assert held.is_established
    try:
        second = AE(ae_title="PACS")
        second.add_requested_context("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2.1")
        assert second.associate("127.0.0.1", receiver.port, ae_title="CURATE").is_rejected
    finally:
        held.release()
    wait_for(lambda: not receiver.ae.active_associations, "the held association to end")
    assert send(receiver.port, a_series(1)) == [0x0000]
    assert receiver.ae.maximum_pdu_size == 65536


SENDER = textwrap.dedent("""
    import sys, numpy as np, pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid
    from pynetdicom import AE
    port, study, series = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    def instance(n, big=False):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.InstanceNumber = study, series, n
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        if big:  # 64 MB of pixels: most likely still on the wire when the sender is killed
            ds.Rows = ds.Columns = 4096
            ds.NumberOfFrames = 2
            ds.PixelData = np.ones((2, 4096, 4096), dtype=np.uint16).tobytes()
        return ds
    ae = AE(ae_title="PACS")
    ae.add_requested_context("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2.1")
    assoc = ae.associate("127.0.0.1", port, ae_title="CURATE")
    for n in range(1, 4):
        assert assoc.send_c_store(instance(n)).Status == 0
    big = instance(4, big=True)
    print("sent 3", flush=True)
    assoc.send_c_store(big)
    print("sent 4", flush=True)
    sys.stdin.readline()  # never given: the test kills this process
""")


def test_a_sender_killed_mid_series_leaves_what_arrived_ingested_and_nothing_half_written(
        world: World, airflow_api: FakeAirflow) -> None:
    trigger = AirflowTrigger(airflow_api.url, username="receiver", password="s3cret")
    receiver = world.receiver(trigger, quiet_seconds=1.0)
    study, series = generate_uid(), generate_uid()
    sender = subprocess.Popen([sys.executable, "-c", SENDER, str(receiver.port), study, series],
                              stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
    try:
        assert sender.stdout.readline().strip() == "sent 3"
        os.kill(sender.pid, signal.SIGKILL)  # mid-association, most likely mid-dataset
    finally:
        sender.wait(timeout=30)
    wait_for(lambda: airflow_api.posted("/dagRuns"), "the series' trigger after the sender died")
    with world.catalog.session() as s:
        rows = s.execute(select(Instance.sha256, Instance.raw_key)).all()
    assert len(rows) in (3, 4)  # the fourth, if it was complete before the kill, is fully there
    assert world.raw_objects() == {r.raw_key for r in rows}, "bytes in the raw zone without a catalog row"
    spooled = list((world.spool / SERIES).glob("*/*.dcm"))
    assert sorted(p.stem for p in spooled) == sorted(r.sha256 for r in rows)
    assert not [p for p in world.spool.rglob("*") if p.is_file() and p.name.startswith(".part-")]
    assert not list((world.spool / INCOMING).glob("*/*"))
    assert verify_chain(world.catalog).ok
    assert len(airflow_api.posted("/dagRuns")) == 1


def test_each_quiet_series_starts_one_curate_source_run_naming_it_without_phi(
        world: World, airflow_api: FakeAirflow) -> None:
    trigger = AirflowTrigger(airflow_api.url, username="receiver", password="s3cret")
    receiver = world.receiver(trigger, quiet_seconds=1.0)
    series_a, series_b = a_series(3), a_series(2, "MR_small.dcm")
    assert send(receiver.port, series_a[:2] + series_b[:1]) == [0] * 3
    assert send(receiver.port, series_a[2:] + series_b[1:] + series_a[:1]) == [0] * 3  # a resend among them
    runs = wait_for(lambda: len(airflow_api.posted("/dagRuns")) >= 2 and airflow_api.posted("/dagRuns"),
                    "one curate_source run per series")
    time.sleep(3 * receiver.config.quiet_seconds)  # quiet for longer still: nothing more is posted
    assert len(airflow_api.posted("/dagRuns")) == 2
    assert all(r["path"] == "/api/v2/dags/curate_source/dagRuns" and r["auth"] == "Bearer tok" for r in runs)
    assert_no_phi(json.dumps(airflow_api.requests), series_a + series_b)
    with world.catalog.session() as s:
        series_ids = dict(s.execute(select(Series.series_instance_uid, Series.id)).all())
    by_source = {Path(r["body"]["conf"]["source"]).name: r["body"] for r in runs}
    assert set(by_source) == {str(series_ids[series_a[0].SeriesInstanceUID]),
                              str(series_ids[series_b[0].SeriesInstanceUID])}
    for body in by_source.values():
        assert body["conf"]["site"] == "site-a" and body["logical_date"] is None
        # What curate_source's ingest does with that source: nothing new, exactly that series handed on.
        summary = ingest(body["conf"]["source"], world.catalog, world.store, workers=1, site="site-a")
        assert summary.instances_new == 0 and summary.quarantined == []
        assert summary.series_ids == [int(Path(body["conf"]["source"]).name)]
        assert (world.spool / TRIGGERED / Path(body["conf"]["source"]).name).exists()

    # A late instance reopens its series: one more run, with a run id of its own.
    assert send(receiver.port, [series_instance(series_a[0].SeriesInstanceUID, series_a[0].StudyInstanceUID, 4)]) == [0]
    wait_for(lambda: len(airflow_api.posted("/dagRuns")) == 3, "a run for the reopened series")
    assert len({r["body"]["dag_run_id"] for r in airflow_api.posted("/dagRuns")}) == 3


def test_asset_trigger_posts_an_asset_event_with_the_series_reference(world: World, airflow_api: FakeAirflow) -> None:
    trigger = AirflowTrigger(airflow_api.url, mode="asset", username="receiver", password="s3cret")
    receiver = world.receiver(trigger, quiet_seconds=0.5)
    series = a_series(2)
    assert send(receiver.port, series) == [0, 0]
    (event,) = wait_for(lambda: airflow_api.posted("/assets/events"), "the asset event")
    assert event["body"]["asset_id"] == 7
    extra = event["body"]["extra"]
    assert extra["instances"] == 2 and extra["receiver"] == "CURATE" and extra["site"] == "site-a"
    assert Path(extra["source"]) == world.spool / SERIES / str(extra["series_id"])
    assert_no_phi(json.dumps(airflow_api.requests), series)


def test_a_curated_series_leaves_the_spool_after_the_retention_and_nothing_else_goes(
        world: World, airflow_api: FakeAirflow) -> None:
    trigger = AirflowTrigger(airflow_api.url, username="receiver", password="s3cret")
    receiver = world.receiver(trigger, quiet_seconds=0.3, spool_retention_hours=1 / 3600, prune_every=0.2)
    curated, late = a_series(2), a_series(1)
    assert send(receiver.port, curated) == [0, 0]
    wait_for(lambda: airflow_api.posted("/dagRuns"), "the trigger")
    wait_for(lambda: not list((world.spool / SERIES).iterdir()), "the curated series' folder to be pruned")
    assert not list((world.spool / TRIGGERED).iterdir())
    assert counts(world.catalog)["instance"] == 2 and len(world.raw_objects()) == 2
    # A series still open is never pruned; a late instance of a pruned series opens a new folder.
    receiver.quiet.quiet_seconds = 3600
    assert send(receiver.port, late + [series_instance(curated[0].SeriesInstanceUID, curated[0].StudyInstanceUID,
                                                       3)]) == [0, 0]
    time.sleep(5 * receiver.config.prune_every)
    assert len(list((world.spool / SERIES).glob("*/*.dcm"))) == 2


def test_a_failed_trigger_is_retried_and_the_series_is_not_lost(world: World) -> None:
    (port,) = free_ports(1)  # nothing listens there yet
    trigger = AirflowTrigger(f"http://127.0.0.1:{port}", username="receiver", password="s3cret", timeout=2)
    receiver = world.receiver(trigger, quiet_seconds=0.3)
    assert send(receiver.port, a_series(2)) == [0, 0]
    wait_for(lambda: receiver.stats["trigger_failures"] >= 2, "failed triggers")
    assert receiver.stats["series_triggered"] == 0
    assert not list((world.spool / TRIGGERED).iterdir())


def test_orthanc_sends_c_store_to_the_receiver(world: World, orthanc_server) -> None:
    orthanc_server.clear()
    series = a_series(3) + a_series(2, "MR_small.dcm")
    assert orthanc_server.stow(series) == 5
    receiver = world.receiver(accept_aets=("CURATETEST",))
    auth, url = orthanc_server.auth, orthanc_server.url
    requests.put(f"{url}/modalities/curate", auth=auth, timeout=10,
                 json={"AET": "CURATE", "Host": "127.0.0.1", "Port": receiver.port}).raise_for_status()
    instances = requests.get(f"{url}/instances", auth=auth, timeout=10).json()
    answer = requests.post(f"{url}/modalities/curate/store", auth=auth, timeout=120,
                           json={"Resources": instances, "Synchronous": True})
    answer.raise_for_status()
    assert answer.json()["FailedInstancesCount"] == 0
    with world.catalog.session() as s:
        got = set(s.scalars(select(Instance.sop_instance_uid)))
        assert s.scalars(select(Source.uri)).all() == ["dimse://CURATE/CURATETEST"]
    assert got == {str(ds.SOPInstanceUID) for ds in series}
    assert receiver.stats["new"] == 5 and receiver.stats["quarantined"] == 0
    orthanc_server.clear()


def _self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def test_tls_receiver_stores_over_tls_and_refuses_plain_associations(world: World, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    receiver = world.receiver(tls_cert=cert, tls_key=key, network_timeout=5.0)
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cert))
    assert send(receiver.port, a_series(1), tls=(client, "localhost")) == [0x0000]
    plain = AE(ae_title="PACS")
    plain.acse_timeout = plain.network_timeout = 5
    plain.add_requested_context("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2.1")
    assert not plain.associate("127.0.0.1", receiver.port, ae_title="CURATE").is_established
    assert counts(world.catalog)["instance"] == 1


def _cli(world: World, port: int, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, CURATE_HOME=str(world.root / "home"))
    return subprocess.Popen([sys.executable, "-m", "curate", "receive", "--host", "127.0.0.1", "--port", str(port),
                             "--db", world.catalog.url, "--store", str(world.root / "store"),
                             "--spool", str(world.spool), "--site", "site-a", *extra],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_listening(proc: subprocess.Popen) -> str:
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "listening on" in line:
            return "".join(lines)
    pytest.fail("curate receive did not start:\n" + "".join(lines)[-3000:])


def test_cli_receiver_killed_before_a_series_is_quiet_starts_its_curation_after_restart(
        world: World, airflow_api: FakeAirflow) -> None:
    (port,) = free_ports(1)
    password = world.root / "airflow-passwords.json"  # the simple auth manager's file, as compose mounts it
    password.write_text(json.dumps({"admin": "other", "receiver": "s3cret"}))
    trigger = ["--airflow-url", airflow_api.url, "--airflow-user", "receiver", "--airflow-password-file", str(password)]
    first = _cli(world, port, "--quiet-seconds", "3600", *trigger)
    try:
        _wait_listening(first)
        series = a_series(2)
        assert send(port, series) == [0, 0]
    finally:
        first.kill()  # SIGKILL: the series was never quiet, nothing triggered
        first.wait(timeout=30)
    assert airflow_api.posted("/dagRuns") == []
    second = _cli(world, port, "--quiet-seconds", "0.5", *trigger)
    try:
        _wait_listening(second)
        (run,) = wait_for(lambda: airflow_api.posted("/dagRuns"), "the restarted receiver's trigger")
        assert run["body"]["conf"]["source"].startswith(str(world.spool / SERIES))
        second.send_signal(signal.SIGTERM)
        output, _ = second.communicate(timeout=60)
    finally:
        if second.poll() is None:
            second.kill()
    assert second.returncode == 0, output[-3000:]
    assert "stopped" in output
    assert_no_phi(output, series)
    assert counts(world.catalog)["instance"] == 2
