"""Pixel decoding for the text search: JPEG-LS goes through CharLS (pyjpegls), ~3.4x cheaper than
pydicom's default pylibjpeg, with the very same array (JPEG-LS decoding is exactly specified)."""
from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.pixels.utils import pixel_array

from deid.engine import Deidentifier, _pydicom_pixels

JPEG_LS = ["MR_small_jpeg_ls_lossless.dcm", "JPEGLSNearLossless_08.dcm", "JPEGLSNearLossless_16.dcm",
           "SC_rgb_jls_lossy_line.dcm"]


@pytest.mark.parametrize("name", JPEG_LS)
def test_jpeg_ls_through_charls_same_pixels(name):
    ds = pydicom.dcmread(get_testdata_file(name))
    arr = _pydicom_pixels(ds)
    assert ds._pixel_array_opts.get("decoding_plugin") == "pyjpegls"
    ref = pixel_array(pydicom.dcmread(get_testdata_file(name)), decoding_plugin="pylibjpeg")
    assert arr.dtype == ref.dtype and np.array_equal(arr, ref)


def test_jpeg_ls_output_same_as_with_libjpeg():
    """The de-identified file is byte for byte the one decoded by pylibjpeg (the old path)."""
    data = open(get_testdata_file("MR_small_jpeg_ls_lossless.dcm"), "rb").read()
    ours = Deidentifier("default", b"decode-test-secret-0123456789abcd").deidentify(data, "a.dcm")
    ds = pydicom.dcmread(io.BytesIO(data))
    ref = pixel_array(ds, decoding_plugin="pylibjpeg")
    assert ours.status == "written"
    # the text search saw the same pixels: nothing masked, the pixel data are the source's
    out = pydicom.dcmread(io.BytesIO(ours.data))
    assert ours.pixels["masked_boxes"] == 0
    assert np.array_equal(pixel_array(out, decoding_plugin="pyjpegls"), ref)


def test_non_jpeg_ls_keeps_pydicom_default():
    ds = pydicom.dcmread(get_testdata_file("MR_small_RLE.dcm"))
    arr = _pydicom_pixels(ds)
    assert "decoding_plugin" not in ds._pixel_array_opts
    assert np.array_equal(arr, pixel_array(pydicom.dcmread(get_testdata_file("MR_small_RLE.dcm"))))
