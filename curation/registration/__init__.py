"""Motion correction and co-registration (issue 5): rigid/affine, mutual information,
multi-resolution; results as 4x4 matrices mapping fixed-space points (LPS mm) to moving-space
points, and as new derived DICOM series in the same study.

Entry points: `register_images` (two volumes), `motion_correct` (a 4D series), `register_study`
(the pipeline's `register` stage), `load_config` (defaults + overrides).
"""
from curation.confighash import config_hash
from curation.registration.config import load_config
from curation.registration.coregister import Registration, describe_matrix, register_images
from curation.registration.motion import MotionCorrection, motion_correct
from curation.registration.study import STAGE, STAGE_VERSION, StudyRegistration, register_study

__all__ = [
    "STAGE",
    "STAGE_VERSION",
    "MotionCorrection",
    "Registration",
    "StudyRegistration",
    "config_hash",
    "describe_matrix",
    "load_config",
    "motion_correct",
    "register_images",
    "register_study",
]
