"""Bad inputs every real export contains, each with the outcome ingest must reach.

- corrupt: the DICM magic after the preamble, then garbage;
- truncated: a valid instance cut inside its pixel data, and one cut inside its header;
- non_dicom: an export read-me and a stray Windows thumbnail cache;
- duplicate: the same bytes at another path (ingest keeps one copy: skip_duplicate);
- conflict: the same SOPInstanceUID with other bytes (quarantined as a conflict);
- missing_uid: an instance without SOPInstanceUID.
Paths of the duplicate and the conflict sort after their originals (`dicom/resent/...` comes after
`dicom/P...`), so a folder walk in sorted order meets the original first.
"""
from __future__ import annotations

import copy

import numpy as np

from curation.vocabulary import Modality, QuarantineReason
from synth.dicomio import encode
from synth.identity import rng_for, uid_from
from synth.writer import SiteWriter

OLE_MAGIC = bytes.fromhex("D0CF11E0A1B11AE1")


def _pick(writer: SiteWriter, modality: str, n: int) -> list[str]:
    """Deterministic choice of kept good files of a modality (first patients first)."""
    paths = [p for p in sorted(writer.kept) if writer.files[p]["modality"] == modality]
    if len(paths) < n:
        paths = sorted(writer.kept)
    return paths[:n]


def _sibling(rel: str, name: str) -> str:
    return rel.rsplit("/", 1)[0] + "/" + name


def plant_bad_inputs(writer: SiteWriter, seed: int) -> list[dict]:
    """Write the bad inputs next to the good files; returns what was planted (also in `files`)."""
    rng = rng_for(seed, "bad")
    planted: list[dict] = []
    mr = _pick(writer, Modality.MR, 4)
    ct = _pick(writer, Modality.CT, 2)

    def note(rel: str, type_: str, reason: str) -> None:
        planted.append({"file": rel, "type": type_, "reason": reason})

    # corrupt: DICM magic, then garbage
    for i, src in enumerate((mr[0], ct[0])):
        rel = _sibling(src, f"IM90{i + 1:02d}")
        data = bytes(128) + b"DICM" + rng.integers(0, 256, 2048 + 512 * i, dtype=np.uint8).tobytes()
        writer.write_other(rel, data, QuarantineReason.CORRUPT, "quarantine", reason="DICM magic followed by garbage")
        note(rel, QuarantineReason.CORRUPT, "DICM magic followed by garbage")

    # truncated in the pixel data / in the header: new instances of a real series, cut short
    for src, where, name in ((mr[1], "pixel_data", "IM9011"), (ct[1], "header", "IM9012")):
        ds = copy.deepcopy(writer.kept[src])
        ds.SOPInstanceUID = uid_from(seed, "truncated", where)  # not-vocabulary
        ds.InstanceNumber = 9000 + len(planted)
        data = encode(ds, writer.files[src]["transfer_syntax"])
        if where == "pixel_data":
            cut = len(data) - max(64, len(ds.PixelData) // 2)
        else:  # 300 bytes into the dataset, after the file meta group (its length is at 140..144)
            cut = 144 + int.from_bytes(data[140:144], "little") + 300
        rel = _sibling(src, name)
        writer.write_other(rel, data[:cut], QuarantineReason.TRUNCATED, "quarantine",
                           sop_instance_uid=str(ds.SOPInstanceUID),
                           series_instance_uid=str(ds.SeriesInstanceUID), truncated_in=where,
                           reason=f"truncated in the {where.replace('_', ' ')}")
        note(rel, QuarantineReason.TRUNCATED, f"truncated in the {where}")

    # non-DICOM: an export read-me and a stray thumbnail cache
    readme = ("PACS export\r\nThis media contains DICOM images. Open DICOMDIR with a DICOM viewer.\r\n"
              "Exported by the PACS export service.\r\n").encode()
    writer.write_other("dicom/README.TXT", readme, "non_dicom", "quarantine", reason="text file")
    note("dicom/README.TXT", "non_dicom", "text file")
    thumbs = OLE_MAGIC + bytes(24) + rng.integers(0, 256, 4000, dtype=np.uint8).tobytes()
    rel = _sibling(mr[2], "Thumbs.db")
    writer.write_other(rel, thumbs, "non_dicom", "quarantine", reason="Windows thumbnail cache")
    note(rel, "non_dicom", "Windows thumbnail cache")

    # exact duplicate: same bytes, other path
    src = mr[2]
    data = (writer.out / src).read_bytes()
    rel = "dicom/resent/" + src[len("dicom/"):]
    writer.write_other(rel, data, "duplicate", "skip_duplicate", sop_instance_uid=writer.files[src]["sop_instance_uid"],
                       series_instance_uid=writer.files[src]["series_instance_uid"], duplicate_of=src)
    note(rel, "duplicate", f"same bytes as {src}")

    # conflicting duplicate: same SOPInstanceUID, other bytes
    src = mr[3]
    ds = copy.deepcopy(writer.kept[src])
    ds.ImageComments = "Re-sent after correction"
    ds.InstanceNumber = int(ds.InstanceNumber) + 1000
    data = encode(ds, writer.files[src]["transfer_syntax"])
    rel = "dicom/resent/" + src[len("dicom/"):]
    writer.write_other(rel, data, QuarantineReason.CONFLICT, "quarantine", sop_instance_uid=str(ds.SOPInstanceUID),
                       series_instance_uid=str(ds.SeriesInstanceUID), conflicts_with=src,
                       reason="same SOPInstanceUID as another file, other bytes")
    note(rel, QuarantineReason.CONFLICT, f"same SOPInstanceUID as {src}, other bytes")

    # an instance without SOPInstanceUID
    src = ct[0]
    ds = copy.deepcopy(writer.kept[src])
    del ds.SOPInstanceUID
    ds.InstanceNumber = 9013
    data = encode(ds, writer.files[src]["transfer_syntax"])
    rel = _sibling(src, "IM9013")
    writer.write_other(rel, data, QuarantineReason.MISSING_UID, "quarantine",
                       series_instance_uid=str(ds.SeriesInstanceUID),
                       reason="no SOPInstanceUID")
    note(rel, QuarantineReason.MISSING_UID, "no SOPInstanceUID")
    return planted
