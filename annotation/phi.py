"""Identifying DICOM attributes the service strips from every object it serves or exports.

Items come from the deid/derived zone already; this is defence in depth so that a header field
the pipeline missed still never reaches a reader, a response or an export.
"""
from __future__ import annotations

from pydicom import Dataset

# Type 2 attributes that highdicom and viewers expect present: kept, emptied.
EMPTIED = (
    "PatientName", "PatientID", "PatientBirthDate", "ReferringPhysicianName", "AccessionNumber", "StudyID",
)
# Everything else that names, locates or dates a person, or carries free text.
REMOVED = (
    "OtherPatientIDs", "OtherPatientIDsSequence", "OtherPatientNames", "PatientBirthName", "PatientBirthTime",
    "PatientAddress", "PatientTelephoneNumbers", "PatientTelecomInformation", "PatientMotherBirthName",
    "MedicalRecordLocator", "IssuerOfPatientID", "PatientAge", "PatientSize", "PatientWeight",
    "Occupation", "MilitaryRank", "BranchOfService", "CountryOfResidence", "RegionOfResidence",
    "EthnicGroup", "PatientReligiousPreference", "AdditionalPatientHistory", "PatientComments",
    "ResponsiblePerson", "ResponsibleOrganization", "PatientInsurancePlanCodeSequence",
    "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName", "InstitutionCodeSequence",
    "PerformingPhysicianName", "OperatorsName", "NameOfPhysiciansReadingStudy", "PhysiciansOfRecord",
    "RequestingPhysician", "ReferringPhysicianAddress", "ReferringPhysicianTelephoneNumbers",
    "ScheduledPerformingPhysicianName", "ContentCreatorName", "StationName", "DeviceSerialNumber",
    "ImageComments", "StudyComments", "SeriesDescription", "StudyDescription", "PerformedProcedureStepDescription",
    "RequestAttributesSequence", "ReferencedPatientSequence", "ReferencedStudySequence",
    "AdmittingDiagnosesDescription", "DerivationDescription", "ProtocolName", "CurrentPatientLocation",
    "PatientState", "ScheduledProcedureStepDescription", "RequestedProcedureDescription",
)


def strip_identifying(ds: Dataset) -> Dataset:
    """Empty or remove identifying attributes, private tags, overlays and curves, in place."""
    for keyword in EMPTIED:
        if keyword in ds:
            setattr(ds, keyword, "")
    for keyword in REMOVED:
        if keyword in ds:
            delattr(ds, keyword)
    ds.remove_private_tags()
    for tag in list(ds.keys()):
        group = tag.group
        if 0x6000 <= group <= 0x60FF or 0x5000 <= group <= 0x50FF:
            del ds[tag]
    if "PatientIdentityRemoved" not in ds:
        ds.PatientIdentityRemoved = "YES"
    return ds
