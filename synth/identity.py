"""Deterministic fake identities, UIDs and random streams for the synthetic hospital.

Why our own small lists: no network and no Faker, and every value must follow from the seed alone so
two runs give byte-identical files. Every name token is chosen so that it cannot appear by accident
in the non-identifying text we write (vendor names, protocol names), which keeps leak scans exact.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field

import numpy as np

#: UID root for "derived from a UUID-like integer" UIDs (PS3.5 B.2): 2.25.<decimal of up to 128 bits>.
UID_ROOT = "2.25."

MALE_GIVEN = (
    "Bartholomew", "Cornelius", "Desmond", "Evander", "Fitzgerald", "Gideon", "Horatio", "Ignatius",
    "Jeremiah", "Leopold", "Mortimer", "Nathaniel", "Octavius", "Percival", "Quentin", "Reginald",
    "Sebastian", "Thaddeus", "Ulysses", "Valentin", "Wilhelm", "Zacharias",
)
FEMALE_GIVEN = (
    "Annabella", "Beatrix", "Cordelia", "Dorothea", "Evangeline", "Felicity", "Genevieve",
    "Henrietta", "Isadora", "Josephine", "Lucinda", "Marguerite", "Ottilie", "Philippa", "Rosalind",
    "Seraphina", "Theodora", "Winifred", "Ysolde", "Zenobia",
)
MIDDLE_INITIALS = "ABCDEFGHJKLMNPRSTW"
SURNAMES = (
    "Abernathy", "Blackwood", "Castellanos", "Dunleavy", "Eriksdottir", "Fairweather", "Gallagher",
    "Hollingsworth", "Iwashita", "Jablonski", "Kowalczyk", "Lindqvist", "Montgomery", "Nakamura",
    "Oyelaran", "Pemberton", "Quiroga", "Rasmussen", "Szczepanski", "Thistlewood", "Underhill",
    "Vasquez-Ortega", "Whitcombe", "Xiaoling", "Yardley", "Zielinski", "O'Rourke", "McAllister",
)
STREETS = (
    "Juniper Lane", "Alderbrook Road", "Quarry Hill Street", "Marigold Crescent", "Foxglove Avenue",
    "Kingfisher Way", "Old Mill Row", "Larkspur Court", "Hawthorn Terrace", "Bellweather Drive",
)
CITIES = (
    ("Brookhaven", "NY", "11719"), ("Fairmont", "WV", "26554"), ("Glenwood", "IA", "51534"),
    ("Kingsport", "TN", "37660"), ("Millbrook", "AL", "36054"), ("Riverton", "WY", "82501"),
)
PHYSICIANS = (
    ("Okonkwo", "Adaeze"), ("Van der Berg", "Pieter"), ("Haverford", "Miriam"), ("Castellucci", "Renata"),
    ("Brennan", "Tobias"), ("Lindenbaum", "Sigrid"), ("Achterberg", "Jurgen"), ("Mwangi", "Wanjiru"),
)
OPERATORS = (("Tennant", "Rhys"), ("Delacroix", "Amelie"), ("Fenwick", "Callum"), ("Ibarra", "Lucia"))


def uid_from(*parts: object) -> str:
    """A valid, deterministic DICOM UID from the given parts (2.25 root, 120-bit integer)."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return UID_ROOT + str(int.from_bytes(digest[:15], "big"))


def rng_for(*parts: object) -> np.random.Generator:
    """An independent random stream keyed by the given parts, so the data of one series does not
    depend on how many series were made before it (patients 0..k are the same for any --patients)."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return np.random.default_rng(np.frombuffer(digest[:16], dtype=np.uint32))


def dicom_pn(family: str, given: str, middle: str = "") -> str:
    """PersonName in DICOM form (FAMILY^GIVEN^MIDDLE), upper-case as most PACS export it."""
    parts = [family.upper(), given.upper()] + ([middle.upper()] if middle else [])
    return "^".join(parts)


@dataclass(frozen=True)
class Person:
    """A physician or operator: one person, several spellings."""

    family: str
    given: str

    @property
    def pn(self) -> str:
        return dicom_pn(self.family, self.given)

    @property
    def spellings(self) -> list[str]:
        return [self.pn, f"{self.given} {self.family}", f"Dr. {self.family}", f"{self.family}, {self.given}"]


@dataclass
class Site:
    """The hospital: institution, address, staff, stations."""

    seed: int
    institution: str
    department: str
    address: str
    phone: str
    physicians: list[Person]
    operators: list[Person]
    issuer: str

    def to_json(self) -> dict:
        return {
            "institution_name": self.institution,
            "institutional_department_name": self.department,
            "institution_address": self.address,
            "phone": self.phone,
            "physicians": [p.pn for p in self.physicians],
            "operators": [p.pn for p in self.operators],
            "issuer_of_patient_id": self.issuer,
        }

    @property
    def phi_values(self) -> list[str]:
        """Identifying strings of the site itself (planted into every patient's files)."""
        out = [self.institution, self.department, self.address, self.phone, self.issuer]
        for p in self.physicians + self.operators:
            out.extend(p.spellings)
        return out


def make_site(seed: int) -> Site:
    rng = rng_for(seed, "site")
    city, state, zipc = CITIES[int(rng.integers(len(CITIES)))]
    name = f"{city} {('Memorial', 'General', 'University', 'Regional')[int(rng.integers(4))]} Hospital"
    street = STREETS[int(rng.integers(len(STREETS)))]
    idx = rng.permutation(len(PHYSICIANS))
    return Site(
        seed=seed,
        institution=name,
        department="Department of Radiology",
        address=f"{int(rng.integers(10, 999))} {street}, {city}, {state} {zipc}",
        phone=f"({int(rng.integers(201, 989))}) 555-{int(rng.integers(1000, 9999)):04d}",
        physicians=[Person(*PHYSICIANS[i]) for i in idx[:5]],
        operators=[Person(*o) for o in OPERATORS],
        issuer=f"{city.upper()}_MRN",
    )


@dataclass
class Patient:
    """One fake patient, with every spelling of every identifier we plant."""

    index: int
    patient_id: str
    other_id: str
    family: str
    given: str
    middle: str
    sex: str
    birth_date: dt.date
    address: str
    phone: str
    weight_kg: float
    size_m: float
    head_scale: float
    first_visit: dt.date
    phi_values: list[str] = field(default_factory=list)
    #: The subset of phi_values searched as text (names, IDs, addresses...); the rest are exact values
    #: (dates, times, UIDs) learnt while scanning.
    text_phi: list[str] = field(default_factory=list)

    @property
    def pn(self) -> str:
        return dicom_pn(self.family, self.given, self.middle)

    @property
    def name_spellings(self) -> list[str]:
        return [
            self.pn,
            dicom_pn(self.family, self.given),
            f"{self.given} {self.family}",
            f"{self.family}, {self.given}",
            f"{self.family.upper()} {self.given.upper()}",
            f"{self.given} {self.middle}. {self.family}",
        ]

    @property
    def birth_da(self) -> str:
        return self.birth_date.strftime("%Y%m%d")

    @property
    def birth_spellings(self) -> list[str]:
        return [self.birth_da, self.birth_date.strftime("%Y-%m-%d"), self.birth_date.strftime("%m/%d/%Y")]

    def age_at(self, when: dt.date) -> int:
        years = when.year - self.birth_date.year
        if (when.month, when.day) < (self.birth_date.month, self.birth_date.day):
            years -= 1
        return years

    def add_phi(self, *values: str, exact: bool = False) -> None:
        """Remember an identifying string planted for this patient (kept unique, order kept).

        `exact` values (dates, times, UIDs) are matched as whole element values, the others as text
        anywhere in a string element."""
        for v in values:
            if not v:
                continue
            if v not in self.phi_values:
                self.phi_values.append(v)
            if not exact and v not in self.text_phi:
                self.text_phi.append(v)


def make_patient(seed: int, index: int, site: Site) -> Patient:
    rng = rng_for(seed, "patient", index)
    sex = "F" if rng.random() < 0.5 else "M"
    given_pool = FEMALE_GIVEN if sex == "F" else MALE_GIVEN
    birth = dt.date(1938, 1, 1) + dt.timedelta(days=int(rng.integers(0, 365 * 62)))
    city, state, zipc = CITIES[int(rng.integers(len(CITIES)))]
    first_visit = dt.date(2016, 1, 4) + dt.timedelta(days=int(rng.integers(0, 365 * 7)))
    p = Patient(
        index=index,
        # The index is part of the ID so IDs never collide, whatever the seed.
        patient_id=f"{int(rng.integers(10, 99))}{index:05d}{int(rng.integers(0, 9))}",
        other_id=f"H{int(rng.integers(100000, 999999))}{index:04d}",
        family=SURNAMES[(index * 7 + int(rng.integers(len(SURNAMES)))) % len(SURNAMES)],
        given=given_pool[int(rng.integers(len(given_pool)))],
        middle=MIDDLE_INITIALS[int(rng.integers(len(MIDDLE_INITIALS)))],
        sex=sex,
        birth_date=birth,
        address=f"{int(rng.integers(1, 9999))} {STREETS[int(rng.integers(len(STREETS)))]}, {city}, {state} {zipc}",
        phone=f"({int(rng.integers(201, 989))}) 555-{int(rng.integers(0, 9999)):04d}",
        weight_kg=float(round(rng.uniform(48, 110), 1)),
        size_m=float(round(rng.uniform(1.52, 1.95), 2)),
        head_scale=float(round(rng.uniform(0.94, 1.04), 3)),
        first_visit=first_visit,
    )
    p.add_phi(*p.name_spellings, p.family, p.given, p.patient_id, p.other_id, *p.birth_spellings,
              p.address, p.phone)
    p.add_phi(*site.phi_values)
    return p
