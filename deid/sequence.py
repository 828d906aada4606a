"""A raw sequence element converted exactly as pydicom converts it, without pydicom's per-item
``Dataset.__init__``.

Why: the header walk converts every sequence it keeps, cleans or empties (its items are walked
or searched). pydicom builds each item through ``Dataset.__init__``, whose dozen attribute
assignments, and the three more reading sets, each pass through ``Dataset.__setattr__`` (a
keyword check per name): a third of converting a sequence. :func:`sequence_value` does what
``Dataset.__getitem__`` does for a raw SQ element in pydicom 3.0 (``convert_raw_data_element``,
``convert_SQ``, ``read_sequence``, ``read_sequence_item``, ``read_dataset``: the same reader
calls, elements, values and attributes, the element stored back through ``Dataset.__setitem__``
and the pixel representation passed down) and sets each item's instance attributes directly.
Anything else (a replaced hook or callback, debugging, a deferred or empty value, a value that
is not a sequence) goes through pydicom itself."""
from __future__ import annotations

from io import BytesIO
from struct import unpack
from typing import Any

from pydicom import config
from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import DataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.filereader import _is_implicit_vr, data_element_generator
from pydicom.hooks import hooks, raw_element_value
from pydicom.misc import warn_and_log
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

_CHARSET = BaseTag(0x00080005)
#: the instance attributes ``Dataset.__init__`` sets, with their initial values (the mutable ones
#: are made fresh for every item below)
_TEMPLATE: dict[str, Any] = dict(vars(Dataset()))
#: this module knows how to build exactly what that constructor builds
_KNOWN = _TEMPLATE.keys() == {"_parent_encoding", "_dict", "is_decompressed", "_read_little", "_read_implicit",
                              "_read_charset", "is_undefined_length_sequence_item", "_private_blocks",
                              "_pixel_array", "_pixel_array_opts", "_pixel_id"} | (
    set() if config._use_future else {"_is_little_endian", "_is_implicit_VR"})


def sequence_value(ds: Dataset, key: BaseTag) -> Any:
    """``ds[key].value`` for the sequence element under ``key`` (the dataset's own key object)."""
    raw = ds._dict[key]
    if (not raw.is_raw or not _KNOWN or config.debugging or config.data_element_callback
            or hooks.raw_element_value is not raw_element_value or not raw.value or raw.length == 0):
        return ds[key].value
    # Dataset.__getitem__ (a sequence is never (0008,0005))
    character_set = ds.original_character_set or ds._character_set
    # convert_raw_data_element: the VR by pydicom's hook, the value as convert_value reads an SQ
    data: dict[str, Any] = {}
    if hooks.raw_element_kwargs:
        hooks.raw_element_vr(raw, data, encoding=character_set, ds=ds, **hooks.raw_element_kwargs)
    else:
        hooks.raw_element_vr(raw, data, encoding=character_set, ds=ds)
    if data["VR"] != "SQ":
        return ds[key].value
    encodings = character_set or [default_encoding]
    if isinstance(encodings, str):
        encodings = [encodings]
    try:
        value = _read_sequence(raw.value, raw.is_implicit_VR, raw.is_little_endian, encodings, raw.value_tell)
    except ValueError:  # pydicom's own handling (warning or error, by its validation mode)
        return ds[key].value
    ds[key] = DataElement(raw.tag, "SQ", value, raw.value_tell, raw.length == 0xFFFFFFFF, already_converted=True)
    elem = ds._dict[key]
    ds._set_pixel_representation(elem)
    return elem.value


def _read_sequence(byte_string: bytes, implicit: bool, little: bool, encodings: list[str], offset: int) -> Sequence:
    """pydicom's ``convert_SQ`` and ``read_sequence`` (a value of defined, non-zero length)."""
    fp = BytesIO(byte_string)
    bytelength = len(byte_string)
    seq = []
    fp_tell = fp.tell
    start = fp_tell()
    while fp_tell() - start < bytelength:
        file_tell = fp_tell()
        item = _read_item(fp, implicit, little, encodings, offset)
        if item is None:  # sequence delimiter
            break
        item.__dict__["file_tell"] = file_tell + offset
        seq.append(item)
    sequence = Sequence(seq)
    sequence.is_undefined_length = False
    return sequence


def _read_item(fp: BytesIO, implicit: bool, little: bool, encoding: list[str], offset: int) -> Dataset | None:
    """pydicom's ``read_sequence_item``."""
    seq_item_tell = fp.tell() + offset
    try:
        group, element, length = unpack("<HHL" if little else ">HHL", fp.read(8))
    except BaseException:
        raise OSError(f"No tag to read at file position {fp.tell() + offset:X}")
    if group == 0xFFFE and element == 0xE0DD:
        return None
    item = _read_dataset(fp, implicit, little, None if length == 0xFFFFFFFF else length, encoding)
    d = item.__dict__
    d["is_undefined_length_sequence_item"] = length == 0xFFFFFFFF
    d["seq_item_tell"] = seq_item_tell
    return item


def _read_dataset(fp: BytesIO, implicit: bool, little: bool, bytelength: int | None, parent_encoding: Any) -> Dataset:
    """pydicom's ``read_dataset`` for a sequence item (no stop condition, nothing deferred)."""
    fp_tell = fp.tell
    fp_start = fp_tell()
    implicit = _is_implicit_vr(fp, implicit, little, None, is_sequence=True)
    fp.seek(fp_start)
    de_gen = data_element_generator(fp, implicit, little, None, None, parent_encoding, None)
    raw_data_elements: dict = {}
    try:
        if bytelength is None:
            raw_data_elements = {e.tag: e for e in de_gen}
        else:
            while fp_tell() - fp_start < bytelength:
                raw_data_element = next(de_gen)
                raw_data_elements[raw_data_element.tag] = raw_data_element
    except StopIteration:
        pass
    except EOFError as details:
        if config.settings.reading_validation_mode == config.RAISE:
            raise
        warn_and_log(str(details) + " in file " + getattr(fp, "name", "<no filename>"), UserWarning)
    except NotImplementedError as details:
        config.logger.error(details)
    # Dataset(raw_data_elements, parent_encoding=parent_encoding), attributes set directly
    item = Dataset.__new__(Dataset)
    d = dict(_TEMPLATE)
    d["_parent_encoding"] = parent_encoding
    d["_dict"] = raw_data_elements
    d["_private_blocks"] = {}
    d["_pixel_array_opts"] = {"use_pdh": False}
    d["_pixel_id"] = {}
    item.__dict__.update(d)
    if 0x00080005 in raw_data_elements:
        char_set = convert_raw_data_element(raw_data_elements[_CHARSET]).value
        encoding = convert_encodings(char_set)
    else:
        encoding = parent_encoding
    # ds.set_original_encoding(implicit, little, encoding)
    d = item.__dict__
    d["_read_implicit"] = implicit
    d["_read_little"] = little
    if encoding is not None:
        d["_read_charset"] = encoding
    return item
