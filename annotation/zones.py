"""Which store zones an item may point at: the de-identified and derived zones only.

The platform's store keeps objects at `<root>/<zone>/<key>` (local disk) and
`s3://<bucket>[/<prefix>]/<zone>/<key>` (S3). The zone names below copy `curation.vocabulary.Zone`
(raw, deid, derived, releases, vault); the service talks to the pipeline only over HTTP and must not
import `curation`, so this tiny rule is duplicated here on purpose. Keep the two in step.

Rule for `file://` and `s3://` URIs: no path segment may name a refused zone (raw: PHI; vault:
secrets), and some segment must name a readable zone (`deid`, `derived` by default;
`ANNOTATION_ITEM_ZONES` changes the list). DICOMweb URLs carry no zone: they are limited by
`ANNOTATION_ALLOWED_URL_PREFIXES` to archives of de-identified data.
"""
from __future__ import annotations

RAW = "raw"
DEID = "deid"
DERIVED = "derived"
VAULT = "vault"

REFUSED_ZONES = frozenset({RAW, VAULT})
READABLE_ZONES = (DEID, DERIVED)


class ZoneError(ValueError):
    """The URI points outside the zones the service may read."""


def check_segments(segments: list[str], readable: tuple[str, ...] | list[str] = READABLE_ZONES) -> None:
    """Raise ZoneError unless the path lies in a readable zone and in no refused one."""
    if any(part in REFUSED_ZONES for part in segments):
        raise ZoneError("the raw zone and the vault are never read by the annotation service: register items "
                        "from the deid or derived zone")
    if readable and not any(part in readable for part in segments):
        raise ZoneError(f"an item must point at a de-identified or derived object (a path in the "
                        f"{' or '.join(readable)} zone of the store)")
