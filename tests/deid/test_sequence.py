"""deid.sequence converts raw sequences to exactly pydicom's objects (items, elements, every
attribute), on pydicom's own test files: implicit and explicit VR, big endian, defined and
undefined lengths, nested sequences, character sets."""
from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from deid.sequence import sequence_value

TEST_FILES = sorted((Path(pydicom.__file__).parent / "data" / "test_files").rglob("*.dcm"))


def _same(a, b, path: str = "") -> None:
    assert type(a) is type(b), path
    if isinstance(a, Dataset):
        va, vb = dict(vars(a)), dict(vars(b))
        da, db = va.pop("_dict"), vb.pop("_dict")
        va.pop("buffer", None), vb.pop("buffer", None)  # each read has its own stream
        fa, fb = va.pop("file_meta", None), vb.pop("file_meta", None)
        if fa is not None or fb is not None:
            _same(fa, fb, path + "/meta")
        assert list(va) == list(vb) and va == vb, path
        assert list(da) == list(db), path
        for k in da:
            _same(da[k], db[k], f"{path}/{k}")
    elif isinstance(a, DataElement):
        va, vb = dict(vars(a)), dict(vars(b))
        xa, xb = va.pop("_value"), vb.pop("_value")
        assert va == vb, path
        if a.VR == "SQ":
            assert {k: v for k, v in vars(xa).items() if k != "_list"} == {k: v for k, v in vars(xb).items() if k != "_list"}
            assert len(xa) == len(xb), path
            for i, (p, q) in enumerate(zip(xa, xb)):
                _same(p, q, f"{path}[{i}]")
        else:
            assert xa == xb, path
    else:
        assert a == b, path


def _raw_sequences(ds: Dataset) -> list:
    out = []
    for key, elem in ds._dict.items():
        vr = elem.VR
        if vr is None:
            try:
                vr = dictionary_VR(key)
            except KeyError:
                continue
        if vr == "SQ" and elem.is_raw:
            out.append(key)
    return out


def _convert_both(a: Dataset, b: Dataset) -> int:
    n = 0
    for key in _raw_sequences(a):
        expected, got = a[key].value, sequence_value(b, key)
        _same(a, b, str(key))
        n += 1
        for x, y in zip(expected, got):
            n += _convert_both(x, y)
    return n


@pytest.mark.filterwarnings("ignore")
def test_sequences_equal_pydicoms_conversion():
    assert TEST_FILES, "pydicom's test files are not installed"
    converted = 0
    for f in TEST_FILES:
        data = f.read_bytes()
        try:
            a = pydicom.dcmread(io.BytesIO(data), force=True)
            b = pydicom.dcmread(io.BytesIO(data), force=True)
        except Exception:  # noqa: BLE001 - files pydicom cannot read are no test of the converter
            continue
        converted += _convert_both(a, b)
        _same(a, b)
    assert converted >= 100  # nested and top-level sequences of ~80 files


def test_non_sequence_goes_through_pydicom():
    ds = Dataset()
    ds.PatientName = "Doe^Jane"
    ds.ReferencedImageSequence = [Dataset()]
    key = next(iter(ds._dict))
    assert sequence_value(ds, key) == "Doe^Jane"  # a converted element: pydicom's value
