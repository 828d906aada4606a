"""The DICOM side of the receiver: a pynetdicom Storage SCP over `Intake`, `QuietSeries` and a trigger.

C-STORE status answered for each object (PS3.4 B.2.3):

* 0x0000 Success: the object is in the raw zone and the catalog (new, or the same bytes already there:
  a resend is harmless).
* 0xC000 Failure "cannot understand", with ErrorComment ``quarantined: <reason code>``: the object was
  quarantined (corrupt, truncated, a required attribute missing, another object with the same
  SOPInstanceUID but other bytes...). Its bytes are kept in the raw zone with a quarantine record, so
  nothing is lost, but it is not acknowledged as stored: the sender's operator sees the refusal in the
  sending system, and a warning status (0xBxxx) would let it count the object as delivered. The
  association goes on with the next object.
* 0xA700 Failure "out of resources": the store or the catalog failed (disk full, database down). The
  sender may retry later; the object stays in the spool's incoming folder and is ingested at the next
  start, so a retry finds it catalogued.

Associations are accepted only when called by our AE title and, with `accept_aets`, only from those
calling AE titles (others are rejected: "calling AE title not recognised").
"""
from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom import uid as uids
from pydicom.dataset import Dataset
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification

from curation.receive.intake import Intake
from curation.receive.quiet import Burst, QuietSeries
from curation.receive.trigger import AirflowTrigger, SeriesReady, TriggerError

log = logging.getLogger(__name__)

#: Transfer syntaxes accepted as sent (validation and decoding are ingest's job, not the network's).
TRANSFER_SYNTAXES: tuple[str, ...] = (
    uids.ExplicitVRLittleEndian,
    uids.ImplicitVRLittleEndian,
    uids.DeflatedExplicitVRLittleEndian,
    uids.ExplicitVRBigEndian,
    uids.JPEGBaseline8Bit,
    uids.JPEGExtended12Bit,
    uids.JPEGLossless,
    uids.JPEGLosslessSV1,
    uids.JPEGLSLossless,
    uids.JPEGLSNearLossless,
    uids.JPEG2000Lossless,
    uids.JPEG2000,
    uids.RLELossless,
)

STATUS_SUCCESS = 0x0000
STATUS_CANNOT_UNDERSTAND = 0xC000
STATUS_OUT_OF_RESOURCES = 0xA700


@dataclass(frozen=True)
class ReceiverConfig:
    """How the receiver listens and when it calls a series complete."""

    aet: str = "CURATE"
    host: str = "0.0.0.0"  # noqa: S104 - a DICOM receiver listens for the hospital's senders
    port: int = 11112
    accept_aets: tuple[str, ...] = ()  # empty: any calling AE title
    quiet_seconds: float = 30.0
    max_associations: int = 8
    max_pdu: int = 65536  # bytes; 0 = no limit
    network_timeout: float = 60.0
    dimse_timeout: float = 60.0
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None  # given: senders must present a certificate signed by it
    spool_retention_hours: float = 168.0  # a curated series' spool folder is removed after this; 0: kept
    check_every: float = field(default=0.5, repr=False)  # how often quiet series are looked for
    prune_every: float = field(default=600.0, repr=False)  # how often the spool is pruned


def _ssl_context(config: ReceiverConfig) -> ssl.SSLContext | None:
    if config.tls_cert is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(config.tls_cert), str(config.tls_key) if config.tls_key else None)
    if config.tls_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(str(config.tls_ca))
    return context


class Receiver:
    """The running receiver: `start()` listens (non-blocking), `stop()` closes; counts in `stats`."""

    def __init__(self, config: ReceiverConfig, intake: Intake, trigger: AirflowTrigger | None = None) -> None:
        self.config, self.intake, self.trigger = config, intake, trigger
        self.quiet = QuietSeries(config.quiet_seconds)
        self.stats: dict[str, int] = {"received": 0, "new": 0, "known": 0, "quarantined": 0, "failed": 0,
                                      "associations_refused": 0, "series_triggered": 0, "trigger_failures": 0}
        self._stats_lock = threading.Lock()
        self._server: Any = None
        self._stop = threading.Event()
        self._monitor: threading.Thread | None = None
        self.ae = self._make_ae()

    def _make_ae(self) -> AE:
        ae = AE(ae_title=self.config.aet)
        for context in AllStoragePresentationContexts:
            ae.add_supported_context(context.abstract_syntax, list(TRANSFER_SYNTAXES))
        ae.add_supported_context(Verification)
        ae.require_called_aet = True
        if self.config.accept_aets:
            ae.require_calling_aet = list(self.config.accept_aets)
        ae.maximum_associations = self.config.max_associations
        ae.maximum_pdu_size = self.config.max_pdu
        ae.network_timeout = self.config.network_timeout
        ae.dimse_timeout = self.config.dimse_timeout
        return ae

    @property
    def port(self) -> int:
        """The port listened on (the real one when the config asked for 0)."""
        return self._server.server_address[1] if self._server is not None else self.config.port

    def start(self) -> Receiver:
        """Ingest what a previous run left, reopen its unfinished series, then listen."""
        # pynetdicom's debug output dumps DIMSE messages with their SOP Instance UIDs (PHI-adjacent),
        # and its info output is a line per object: its own lines stop at warnings.
        library_log = logging.getLogger("pynetdicom")
        if library_log.getEffectiveLevel() < logging.WARNING:
            library_log.setLevel(logging.WARNING)
        self.intake.recover()
        for series_id, instances in sorted(self.intake.open_series().items()):
            self.quiet.note(series_id, instances)
        handlers = [(evt.EVT_C_STORE, self._on_store), (evt.EVT_C_ECHO, lambda event: STATUS_SUCCESS),
                    (evt.EVT_REJECTED, self._on_rejected)]
        self._server = self.ae.start_server((self.config.host, self.config.port), block=False,
                                            evt_handlers=handlers, ssl_context=_ssl_context(self.config))
        self._monitor = threading.Thread(target=self._watch, name="receiver-quiet-series", daemon=True)
        self._monitor.start()
        log.info("receiver %s listening on %s:%d (%s; calling AE titles: %s; quiet period %.0f s; trigger: %s)",
                 self.config.aet, self.config.host, self.port, "TLS" if self.config.tls_cert else "no TLS",
                 ", ".join(self.config.accept_aets) or "any", self.config.quiet_seconds,
                 self.trigger.describe() if self.trigger else "none")
        return self

    def stop(self) -> None:
        """Stop listening and watching. Series still open are not triggered now: their spool folders
        carry no trigger mark, so the next start picks them up."""
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        if self._monitor is not None:
            self._monitor.join(timeout=30)
        log.info("receiver %s stopped: %s", self.config.aet, self.stats)

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _count(self, key: str) -> None:
        with self._stats_lock:
            self.stats[key] += 1

    def _on_rejected(self, event: Any) -> None:
        self._count("associations_refused")
        log.warning("receiver: association from AE title %r at %s refused", event.assoc.requestor.ae_title,
                    event.assoc.requestor.address)

    def _on_store(self, event: Any) -> int | Dataset:
        calling = event.assoc.requestor.ae_title
        self._count("received")
        try:
            arrival = self.intake.accept(event.encoded_dataset(), calling)
        except Exception as exc:  # noqa: BLE001 - store/catalog failure: refuse, keep serving
            self._count("failed")
            log.error("receiver: object from %s not stored (%s); answered 'out of resources'", calling,
                      type(exc).__name__)
            return STATUS_OUT_OF_RESOURCES
        if not arrival.accepted:
            with self._stats_lock:
                self.stats["quarantined"] += 1
            log.warning("receiver: object sha256:%s from %s quarantined: [%s] %s", arrival.sha256[:16], calling,
                        arrival.reason_code, arrival.reason)
            status = Dataset()
            status.Status = STATUS_CANNOT_UNDERSTAND
            status.ErrorComment = f"quarantined: {arrival.reason_code}"[:64]
            return status
        self._count("new" if arrival.new else "known")
        assert arrival.series_id is not None
        self.quiet.note(arrival.series_id)
        log.debug("receiver: object sha256:%s from %s %s (series %d)", arrival.sha256[:16], calling,
                  "stored" if arrival.new else "already catalogued", arrival.series_id)
        return STATUS_SUCCESS

    def _watch(self) -> None:
        last_prune = 0.0
        while not self._stop.wait(self.config.check_every):
            for burst in self.quiet.due():
                self._complete(burst)
            if self.config.spool_retention_hours > 0 and time.monotonic() - last_prune >= self.config.prune_every:
                last_prune = time.monotonic()
                try:
                    self.intake.prune(self.config.spool_retention_hours * 3600)
                except OSError as exc:
                    log.warning("receiver: spool not pruned (%s)", type(exc).__name__)

    def _complete(self, burst: Burst) -> None:
        ready = SeriesReady(series_id=burst.series_id, instances=burst.instances,
                            source=str(self.intake.series_folder(burst.series_id)), site=self.intake.site,
                            receiver_aet=self.config.aet, first_arrival=burst.first_arrival)
        try:
            if self.trigger is not None:
                self.trigger.fire(ready)
        except TriggerError as exc:
            self._count("trigger_failures")
            log.warning("receiver: series %d complete (%d instances) but curation not started: %s; retrying "
                        "after another quiet period", burst.series_id, burst.instances, exc)
            self.quiet.retry(burst)
            return
        if not self.quiet.is_open(burst.series_id):  # an instance arriving meanwhile reopened it
            self.intake.mark_triggered(burst.series_id)
        self._count("series_triggered")
        log.info("receiver: series %d complete (%d instances, quiet %.0f s): curation started (%s)",
                 burst.series_id, burst.instances, self.config.quiet_seconds,
                 self.trigger.describe() if self.trigger else "no trigger")


def run_forever(receiver: Receiver, stop: threading.Event) -> None:
    """Serve until `stop` is set (the command sets it on SIGTERM/SIGINT), then stop cleanly."""
    receiver.start()
    try:
        stop.wait()
    finally:
        receiver.stop()


__all__: Sequence[str] = ["Receiver", "ReceiverConfig", "TRANSFER_SYNTAXES", "run_forever"]
