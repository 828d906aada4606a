"""The DICOM C-STORE receiver behind `curate receive`: a Storage SCP whose every received object goes
through ingest's own validation, content-hash storage, catalog and quarantine path, and which starts
curation of a series once no new instance of it has arrived for a quiet period.

One concern per module: `intake` (one received object into the spool, the raw zone and the catalog),
`quiet` (which series have gone quiet), `trigger` (telling Airflow), `scp` (the DICOM side)."""
from curation.receive.intake import Arrival, Intake
from curation.receive.quiet import QuietSeries
from curation.receive.scp import Receiver, ReceiverConfig
from curation.receive.trigger import AirflowTrigger, SeriesReady, TriggerError

__all__ = ["AirflowTrigger", "Arrival", "Intake", "QuietSeries", "Receiver", "ReceiverConfig", "SeriesReady",
           "TriggerError"]
