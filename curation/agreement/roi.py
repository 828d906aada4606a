"""Agreement on regions of interest: boxes and masks drawn by several readers on the same image.

Boxes are `x0, y0, x1, y1` in image pixels, continuous coordinates (a box over pixels 0..9 is
`0, 0, 10, 10`); the two corners may come in any order, as a drawing tool records them. Two readers'
boxes on one item and label are paired one to one by the Hungarian method on IoU, so that one large
box cannot be credited against several small ones; a pair below the IoU threshold is not a match.
Detection F1 between two readers is matches / mean of their box counts: symmetric, so neither reader
plays the truth. Agreement on *whether* there is a finding at all is the yes/no label's business
(`statistics`); here an item where neither reader drew a box has no F1 (NaN), not a perfect one.

Masks (numpy arrays, SimpleITK images, or files SimpleITK reads: .nii.gz, .nrrd, .png, ...) are
compared by Dice, and combined by STAPLE (Warfield et al. 2004, IEEE TMI 23:903), which estimates the
hidden true mask together with each reader's sensitivity and specificity: SimpleITK's
`STAPLEImageFilter` for one structure, `MultiLabelSTAPLEImageFilter` for label maps. A round's painted
masks (the annotation service's run-length encoded slices) get theirs from `mask_consensus`.

Geometry rules (box inside the image, non-degenerate, not the whole image) are QC flags in `qc`;
this module measures whatever it is given.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
from scipy.optimize import linear_sum_assignment

from curation.agreement.table import TableError

COORDINATES = ("x0", "y0", "x1", "y1")
BOX_KEYS = ("item", "label")

MaskLike = np.ndarray | sitk.Image | str | Path


def _pair_key(a: str, b: str) -> str:
    return f"{a}|{b}"


def _ratio(num: float, den: float) -> float:
    return num / den if den else float("nan")


# ---------------------------------------------------------------- boxes

def as_boxes(boxes: object) -> np.ndarray:
    """(n, 4) float array of boxes with each box's corners sorted (x0 <= x1, y0 <= y1)."""
    array = np.asarray(boxes, dtype=float).reshape(-1, 4)
    if not np.isfinite(array).all():
        raise ValueError(f"box coordinates must be finite numbers: {array[~np.isfinite(array).all(axis=1)].tolist()}")
    return np.column_stack([np.minimum(array[:, 0], array[:, 2]), np.minimum(array[:, 1], array[:, 3]),
                            np.maximum(array[:, 0], array[:, 2]), np.maximum(array[:, 1], array[:, 3])])


def iou_matrix(first: object, second: object) -> np.ndarray:
    """(n, m) intersection over union of every box of `first` with every box of `second`.
    Two boxes with no area between them (both zero-area) have IoU 0: there is nothing to share."""
    a, b = as_boxes(first), as_boxes(second)
    width = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    height = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = width * height
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def box_iou(first: object, second: object) -> float:
    """IoU of two boxes."""
    return float(iou_matrix(first, second)[0, 0])


def dice_from_iou(iou: np.ndarray | float) -> np.ndarray | float:
    """Dice = 2|A n B| / (|A| + |B|) = 2 IoU / (1 + IoU), for boxes as for any two sets."""
    return 2 * iou / (1 + iou)


def box_dice(first: object, second: object) -> float:
    """Dice of two boxes."""
    return float(dice_from_iou(box_iou(first, second)))


def _check_threshold(threshold: float) -> None:
    if not 0 < threshold <= 1:
        raise ValueError(f"IoU threshold must be in (0, 1], not {threshold}")


@dataclass(frozen=True)
class BoxMatch:
    """One-to-one matches between two readers' boxes: `first[i]` with `second[j]` for each
    (i, j) in zip(first_index, second_index), with their IoU. Unmatched boxes are the rest."""

    first_index: np.ndarray
    second_index: np.ndarray
    iou: np.ndarray
    n_first: int
    n_second: int

    @property
    def n_matches(self) -> int:
        return len(self.iou)

    @property
    def dice(self) -> np.ndarray:
        return dice_from_iou(self.iou)

    @property
    def f1(self) -> float:
        """Matches over the mean of the two box counts; NaN when neither reader drew a box."""
        return _ratio(self.n_matches, (self.n_first + self.n_second) / 2)


def _assign(iou: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the one-to-one pairs of largest total IoU among pairs >= threshold."""
    admissible = np.where((iou >= threshold) & (iou > 0), iou, 0.0)
    if not admissible.any():
        return np.empty(0, dtype=int), np.empty(0, dtype=int)
    rows, cols = linear_sum_assignment(admissible, maximize=True)
    keep = admissible[rows, cols] > 0
    return rows[keep], cols[keep]


def match_boxes(first: object, second: object, threshold: float = 0.5) -> BoxMatch:
    """Pair boxes one to one so the total IoU of pairs at or above `threshold` is largest
    (Hungarian method; pairs below the threshold, or not overlapping, count as zero and are dropped)."""
    _check_threshold(threshold)
    a, b = as_boxes(first), as_boxes(second)
    iou = iou_matrix(a, b)
    rows, cols = _assign(iou, threshold)
    return BoxMatch(rows, cols, iou[rows, cols], len(a), len(b))


def _box_table(frame: pd.DataFrame, keys: tuple[str, ...]) -> pd.DataFrame:
    """Check a long box table; a row with all four coordinates empty means 'read, drew no box'."""
    required = [*keys, "annotator", *COORDINATES]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise TableError(f"box table lacks column(s) {missing}; has {list(frame.columns)}")
    out = frame.reset_index(drop=True).copy()
    for column in (*keys, "annotator"):
        out[column] = out[column].astype(str)
    raw = out[list(COORDINATES)]
    coords = raw.apply(pd.to_numeric, errors="coerce")
    empty = raw.isna() | (raw.astype(str).apply(lambda column: column.str.strip()) == "")
    bad = (~empty & ~np.isfinite(coords.fillna(np.inf))).any(axis=1) | (empty.any(axis=1) & ~empty.all(axis=1))
    if bad.any():
        rows = (np.flatnonzero(bad.to_numpy()) + 1)[:5].tolist()
        raise TableError(f"box coordinates {list(COORDINATES)} must be four numbers, or all empty for "
                         f"'no box': rows {rows}")
    out[list(COORDINATES)] = coords
    out["has_box"] = ~empty.all(axis=1)
    return out


def _groups(table: pd.DataFrame, keys: tuple[str, ...]):
    """Per item-label: its key values and {reader: (n, 4) boxes} for every reader who read it
    (readers sorted). One sort and plain arrays: a groupby per item-label costs ~1 ms each."""
    table = table.sort_values([*keys, "annotator"], kind="stable")
    if table.empty:
        return
    key_values = table[list(keys)].to_numpy(dtype=object)
    names = table["annotator"].to_numpy(dtype=object)
    coords = as_boxes(table[list(COORDINATES)].fillna(0).to_numpy(dtype=float))
    has_box = table["has_box"].to_numpy()
    new_group = np.r_[True, (key_values[1:] != key_values[:-1]).any(axis=1)]
    starts = np.flatnonzero(new_group)
    for start, end in zip(starts, [*starts[1:], len(table)]):
        group_names, group_boxes, drawn = names[start:end], coords[start:end], has_box[start:end]
        readers, first = np.unique(group_names, return_index=True)
        bounds = [*first, end - start]
        yield (dict(zip(keys, key_values[start])),
               {reader: group_boxes[lo:hi][drawn[lo:hi]] for reader, lo, hi in zip(readers, bounds, bounds[1:])})


def _summary(rows: pd.DataFrame) -> dict[str, object]:
    """Pooled over comparisons (item-label x reader pair): F1 = all matches / half of all boxes
    drawn; IoU and Dice averaged over all matches."""
    matches = int(rows["matches"].sum())
    boxes = int((rows["n_first"] + rows["n_second"]).sum())
    return {"n_comparisons": int(len(rows)), "boxes": boxes, "matches": matches,
            "f1": _ratio(matches, boxes / 2),
            "mean_iou": _ratio(float(rows["sum_iou"].sum()), matches),
            "mean_dice": _ratio(float(rows["sum_dice"].sum()), matches)}


def _json(value: object) -> object:
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


@dataclass(frozen=True)
class BoxAgreement:
    """`pairs`: one row per item-label and reader pair who both read it: n_first, n_second (box
    counts), matches, sum_iou, sum_dice (over matches), mean_iou, mean_dice, f1 (NaN when undefined)."""

    pairs: pd.DataFrame
    threshold: float
    keys: tuple[str, ...]

    def summary(self) -> dict[str, object]:
        """Overall, per label and per reader pair, pooled (JSON-ready: NaN becomes null)."""
        rows = self.pairs
        pair_key = rows["first"] + "|" + rows["second"]
        out = {"threshold": self.threshold, "overall": _summary(rows),
               "pairwise": {key: _summary(group) for key, group in rows.groupby(pair_key, sort=True)}}
        if "label" in rows.columns:
            out["per_label"] = {label: _summary(group) for label, group in rows.groupby("label", sort=True)}
        return _json(out)


def box_agreement(frame: pd.DataFrame, threshold: float = 0.5, keys: tuple[str, ...] = BOX_KEYS) -> BoxAgreement:
    """Matched IoU, Dice and detection F1 for every reader pair on every item-label both read.

    `frame`: one row per box, columns `keys` (default item, label; add e.g. 'frame' for multi-frame
    images), `annotator`, x0, y0, x1, y1. A reader who read an item-label and drew nothing gives one
    row with empty coordinates; a reader with no row there did not read it and is not compared."""
    _check_threshold(threshold)
    table = _box_table(frame, keys)
    readers = sorted(table["annotator"].unique())
    if len(readers) < 2:
        raise ValueError(f"box agreement needs at least two readers; the table has {readers}")
    records = []
    for key, boxes in _groups(table, keys):
        drawn = list(boxes.values())
        offsets = np.cumsum([0, *map(len, drawn)])
        iou = iou_matrix(np.vstack(drawn), np.vstack(drawn))  # every reader pair is a block of it
        span = {reader: slice(lo, hi) for reader, lo, hi in zip(boxes, offsets, offsets[1:])}
        for first, second in combinations(boxes, 2):
            block = iou[span[first], span[second]]
            rows, cols = _assign(block, threshold)
            matched = block[rows, cols]
            records.append((*key.values(), first, second, block.shape[0], block.shape[1], len(matched),
                            float(matched.sum()), float(dice_from_iou(matched).sum())))
    columns = [*keys, "first", "second", "n_first", "n_second", "matches", "sum_iou", "sum_dice"]
    pairs = pd.DataFrame(records, columns=columns)
    with np.errstate(divide="ignore", invalid="ignore"):
        pairs["mean_iou"] = pairs["sum_iou"] / pairs["matches"].where(pairs["matches"] > 0)
        pairs["mean_dice"] = pairs["sum_dice"] / pairs["matches"].where(pairs["matches"] > 0)
        half = (pairs["n_first"] + pairs["n_second"]) / 2
        pairs["f1"] = pairs["matches"] / half.where(half > 0)
    return BoxAgreement(pairs, threshold, keys)


def cluster_boxes(boxes: object, readers: list[str], threshold: float = 0.5) -> np.ndarray:
    """Cluster number (0, 1, ...) of each box, clusters built one at a time around an anchor.

    The anchor is the remaining box that overlaps (IoU >= `threshold`) remaining boxes of the most
    other readers (ties: the larger total of each reader's best IoU, then the position); its cluster
    takes from each of those readers the box of highest IoU with it. So a cluster holds at most one
    box per reader and every member overlaps the anchor by `threshold`, while two members need not
    overlap each other that much (readers jitter around the same lesion in different directions).
    Boxes are ordered by position, and sums taken in sorted order, so renaming readers changes nothing."""
    _check_threshold(threshold)
    array = as_boxes(boxes)
    if len(array) != len(readers):
        raise ValueError(f"{len(array)} boxes but {len(readers)} reader names")
    order = np.lexsort(array.T[::-1])  # by x0, then y0, x1, y1
    array, names = array[order], np.asarray(readers, dtype=object)[order]
    _, owner = np.unique(names, return_inverse=True) if len(names) else ([], np.empty(0, dtype=int))
    iou = iou_matrix(array, array)
    link = np.where((iou >= threshold) & (iou > 0) & (owner[:, None] != owner[None, :]), iou, 0.0)
    by_reader = [np.flatnonzero(owner == r) for r in range(owner.max() + 1 if len(owner) else 0)]
    labels = np.full(len(array), -1)
    remaining = np.ones(len(array), dtype=bool)
    for cluster in range(len(array)):
        if not remaining.any():
            break
        live = link * remaining[None, :]
        best = np.column_stack([live[:, members].max(axis=1) for members in by_reader])
        support = (best > 0).sum(axis=1)
        total = np.sort(best, axis=1).sum(axis=1)
        candidates = np.flatnonzero(remaining)
        anchor = candidates[np.lexsort((candidates, -total[candidates], -support[candidates]))[0]]
        chosen = [anchor] + [members[np.argmax(live[anchor, members])] for members in by_reader
                             if live[anchor, members].max() > 0]
        labels[chosen] = cluster
        remaining[chosen] = False
    result = np.empty(len(array), dtype=int)
    result[order] = labels
    return result


def box_consensus(frame: pd.DataFrame, threshold: float = 0.5, min_readers: int | None = None,
                  method: str = "median", keys: tuple[str, ...] = BOX_KEYS) -> pd.DataFrame:
    """Consensus boxes per item-label: clusters of boxes from different readers (`cluster_boxes`)
    drawn by at least `min_readers` readers (default: a majority of those who read the item-label),
    each summarised by the coordinate-wise median (or mean) of its boxes.

    Columns: keys, x0, y0, x1, y1, n_readers (who drew it), n_read (who read the item-label),
    annotators ('|'-joined), mean_iou (of the cluster's boxes with the consensus box)."""
    if method not in ("median", "mean"):
        raise ValueError(f"method must be 'median' or 'mean', not {method!r}")
    if min_readers is not None and min_readers < 1:
        raise ValueError(f"min_readers must be at least 1, not {min_readers}")
    table = _box_table(frame, keys)
    summarise = np.median if method == "median" else np.mean
    records = []
    for key, boxes in _groups(table, keys):
        needed = min_readers if min_readers is not None else len(boxes) // 2 + 1
        names = [reader for reader, drawn in boxes.items() for _ in range(len(drawn))]
        drawn = np.vstack(list(boxes.values())) if names else np.empty((0, 4))
        clusters = cluster_boxes(drawn, names, threshold)
        for cluster in range(clusters.max() + 1 if len(clusters) else 0):
            members = clusters == cluster
            if members.sum() < needed:
                continue
            box = summarise(as_boxes(drawn[members]), axis=0)
            records.append({**key, **dict(zip(COORDINATES, map(float, box))), "n_readers": int(members.sum()),
                            "n_read": len(boxes), "annotators": "|".join(sorted(np.asarray(names)[members])),
                            "mean_iou": float(iou_matrix(drawn[members], box).mean())})
    return pd.DataFrame(records, columns=[*keys, *COORDINATES, "n_readers", "n_read", "annotators", "mean_iou"])


# ---------------------------------------------------------------- masks

def read_mask(mask: MaskLike) -> sitk.Image:
    """A mask as a SimpleITK image: arrays are wrapped (unit spacing), paths read by SimpleITK."""
    if isinstance(mask, sitk.Image):
        return mask
    if isinstance(mask, np.ndarray):
        return sitk.GetImageFromArray(mask)
    if isinstance(mask, (str, Path)):
        if not Path(mask).is_file():
            raise FileNotFoundError(f"mask file not found: {mask}")
        return sitk.ReadImage(str(mask))
    raise TypeError(f"a mask is a numpy array, a SimpleITK image or a file path, not {type(mask).__name__}")


def _masks(masks: Mapping[str, MaskLike], at_least: int) -> dict[str, sitk.Image]:
    """Read every reader's mask and check they share one pixel grid (size, spacing, origin, direction)."""
    if len(masks) < at_least:
        raise ValueError(f"needs masks from at least {at_least} readers; got {sorted(masks)}")
    images = {reader: read_mask(mask) for reader, mask in sorted(masks.items())}
    first_reader, first = next(iter(images.items()))
    for reader, image in images.items():
        if image.GetNumberOfComponentsPerPixel() != 1:
            raise ValueError(f"mask of {reader} has {image.GetNumberOfComponentsPerPixel()} channels; "
                             "a mask has one")
        same = (image.GetSize() == first.GetSize()
                and np.allclose(image.GetSpacing(), first.GetSpacing())
                and np.allclose(image.GetOrigin(), first.GetOrigin())
                and np.allclose(image.GetDirection(), first.GetDirection()))
        if not same:
            raise ValueError(f"masks of {first_reader} and {reader} are not on the same pixel grid "
                             f"(size {first.GetSize()} vs {image.GetSize()}, spacing {first.GetSpacing()} vs "
                             f"{image.GetSpacing()}); resample them to one grid first")
    return images


def _foreground(image: sitk.Image, label: int | None) -> np.ndarray:
    array = sitk.GetArrayViewFromImage(image)
    return array != 0 if label is None else array == label


def mask_dice(first: MaskLike, second: MaskLike, label: int | None = None) -> float:
    """Dice of two masks: nonzero pixels, or pixels equal to `label` in a label map.
    NaN when neither mask has any such pixel."""
    images = _masks({"first": first, "second": second}, 2)
    a, b = (_foreground(image, label) for image in images.values())
    return _ratio(2 * float(np.logical_and(a, b).sum()), float(a.sum() + b.sum()))


def pairwise_dice(masks: Mapping[str, MaskLike], label: int | None = None) -> dict[str, float]:
    """Dice for every reader pair, keyed 'A|B' (readers sorted)."""
    images = _masks(masks, 2)
    fg = {reader: _foreground(image, label) for reader, image in images.items()}
    return {_pair_key(a, b): _ratio(2 * float(np.logical_and(fg[a], fg[b]).sum()), float(fg[a].sum() + fg[b].sum()))
            for a, b in combinations(fg, 2)}


def _binary_images(images: dict[str, sitk.Image], label: int | None) -> list[sitk.Image]:
    out = []
    for image in images.values():
        binary = sitk.GetImageFromArray(_foreground(image, label).astype(np.uint8))
        binary.CopyInformation(image)
        out.append(binary)
    return out


@dataclass(frozen=True)
class Staple:
    """STAPLE for one structure. `probability`: per pixel P(truly foreground | all readings);
    `consensus`: probability >= `threshold` (uint8 0/1), both on the readers' grid; `readers`:
    annotator, sensitivity, specificity (STAPLE's estimates), dice (with the consensus)."""

    probability: sitk.Image
    consensus: sitk.Image
    readers: pd.DataFrame
    threshold: float
    iterations: int

    def summary(self) -> dict[str, object]:
        return {"method": "staple", "threshold": self.threshold, "iterations": self.iterations,
                "consensus_pixels": int(sitk.GetArrayViewFromImage(self.consensus).sum()),
                "readers": self.readers.to_dict(orient="records")}


def staple(masks: Mapping[str, MaskLike], label: int | None = None, threshold: float = 0.5,
           max_iterations: int | None = None) -> Staple:
    """STAPLE consensus of one structure (nonzero pixels, or `label` in label maps) and each reader's
    sensitivity and specificity, by SimpleITK's `STAPLEImageFilter`. Undefined, hence an error, when
    no reader marked a pixel or every reader marked every pixel."""
    images = _masks(masks, 2)
    binary = _binary_images(images, label)
    marked = [int(sitk.GetArrayViewFromImage(image).sum()) for image in binary]
    n_pixels = int(np.prod(binary[0].GetSize()))
    if sum(marked) == 0 or all(m == n_pixels for m in marked):
        raise ValueError("STAPLE is undefined when no reader marks any pixel or every reader marks every "
                         f"pixel (pixels marked per reader: {dict(zip(images, marked))})")
    flt = sitk.STAPLEImageFilter()
    flt.SetForegroundValue(1)
    if max_iterations is not None:
        flt.SetMaximumIterations(max_iterations)
    probability = flt.Execute(binary)
    consensus = sitk.Cast(sitk.BinaryThreshold(probability, threshold, 2.0, 1, 0), sitk.sitkUInt8)
    truth = sitk.GetArrayViewFromImage(consensus).astype(bool)
    dice = [_ratio(2 * float(np.logical_and(truth, sitk.GetArrayViewFromImage(b)).sum()),
                   float(truth.sum() + sitk.GetArrayViewFromImage(b).sum())) for b in binary]
    readers = pd.DataFrame({"annotator": list(images), "sensitivity": flt.GetSensitivity(),
                            "specificity": flt.GetSpecificity(), "dice": dice})
    return Staple(probability, consensus, readers, threshold, flt.GetElapsedIterations())


@dataclass(frozen=True)
class MultiLabelStaple:
    """Multi-label STAPLE. `consensus`: the label map (pixels STAPLE cannot decide get
    `undecided_label`); `confusion[reader]`: P(reader says row label | true column label), columns
    summing to 1, with ITK's extra row 'undecided' (input pixels already undecided: 0 here);
    `readers`: annotator, label, sensitivity (the diagonal), specificity (P(not this label | truly
    another), the other labels weighted by their share of the consensus)."""

    consensus: sitk.Image
    labels: list[int]
    undecided_label: int
    confusion: dict[str, pd.DataFrame]
    readers: pd.DataFrame

    def summary(self) -> dict[str, object]:
        array = sitk.GetArrayViewFromImage(self.consensus)
        return {"method": "multilabel_staple", "labels": self.labels,
                "undecided_pixels": int((array == self.undecided_label).sum()),
                "readers": self.readers.to_dict(orient="records")}


def multilabel_staple(masks: Mapping[str, MaskLike], undecided_label: int | None = None) -> MultiLabelStaple:
    """STAPLE over label maps (0 = background, 1.. = structures) by SimpleITK's
    `MultiLabelSTAPLEImageFilter`: the consensus label map and each reader's confusion matrix."""
    images = _masks(masks, 2)
    arrays = {reader: sitk.GetArrayFromImage(image) for reader, image in images.items()}
    for reader, array in arrays.items():
        if not np.issubdtype(array.dtype, np.integer) and not np.array_equal(array, np.round(array)):
            raise ValueError(f"label map of {reader} has non-integer values")
        if array.min() < 0:
            raise ValueError(f"label map of {reader} has negative labels")
    top = int(max(array.max() for array in arrays.values()))
    undecided = top + 1 if undecided_label is None else int(undecided_label)
    pixel = sitk.sitkUInt8 if max(top, undecided) < 2 ** 8 else sitk.sitkUInt16
    inputs = [sitk.Cast(image, pixel) if image.GetPixelID() != pixel else image for image in images.values()]
    flt = sitk.MultiLabelSTAPLEImageFilter()
    flt.SetLabelForUndecidedPixels(undecided)
    consensus = flt.Execute(inputs)
    labels = list(range(top + 1))
    consensus_array = sitk.GetArrayViewFromImage(consensus)
    share = np.array([(consensus_array == lab).sum() for lab in labels], dtype=float)
    confusion, rows = {}, []
    for index, reader in enumerate(images):
        matrix = np.asarray(flt.GetConfusionMatrix(index), dtype=float).reshape(len(labels) + 1, len(labels))
        confusion[reader] = pd.DataFrame(matrix, index=[*labels, "undecided"], columns=labels)
        for lab in labels:
            others = np.arange(len(labels)) != lab
            rows.append({"annotator": reader, "label": lab, "sensitivity": float(matrix[lab, lab]),
                         "specificity": _ratio(float(((1 - matrix[lab, others]) * share[others]).sum()),
                                               float(share[others].sum()))})
    return MultiLabelStaple(consensus, labels, undecided, confusion, pd.DataFrame(rows))


# ---------------------------------------------------------------- drawn masks of a round

MASK_KEYS = ("item", "label")


def decode_runs(runs: list[int], rows: int, columns: int) -> np.ndarray:
    """A (rows, columns) bool mask from the annotation service's run-length encoding: row-major
    runs alternating background, foreground, ..., starting with background (possibly 0 long)."""
    counts = np.asarray(runs, dtype=np.int64)
    if counts.ndim != 1 or not len(counts) or (counts < 0).any() or int(counts.sum()) != rows * columns:
        raise ValueError(f"runs do not cover a {rows} x {columns} mask "
                         f"({len(counts)} runs over {int(counts.sum()) if counts.ndim == 1 else '?'} pixels)")
    return np.repeat(np.arange(len(counts)) % 2 == 1, counts).reshape(rows, columns)


def encode_runs(mask: np.ndarray) -> list[int]:
    """The inverse of `decode_runs`: the service's encoding of a 2-D mask."""
    flat = np.asarray(mask, dtype=bool).ravel()
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate([[0], change, [flat.size]])).tolist()
    return [0, *runs] if flat.size and flat[0] else runs


@dataclass(frozen=True)
class MaskConsensus:
    """STAPLE per item and mask label over the slices any reader painted. `masks`: the consensus,
    one row per slice it marks (keys, instance, frame, rows, columns, rle, pixels); `readers`: keys,
    annotator, dice (with the consensus), sensitivity, specificity (STAPLE's), pixels painted;
    `skipped`: keys and why no consensus was formed (fewer than two readers, nothing painted)."""

    masks: pd.DataFrame
    readers: pd.DataFrame
    skipped: pd.DataFrame

    def summary(self) -> dict[str, object]:
        """Small, XCom-safe: counts and each reader's mean Dice with the consensus."""
        dice = self.readers.groupby("annotator")["dice"].mean() if not self.readers.empty else pd.Series(dtype=float)
        return {"method": "staple", "item_labels": int(len(self.readers.drop_duplicates(list(MASK_KEYS)))),
                "consensus_slices": int(len(self.masks)), "skipped": int(len(self.skipped)),
                "mean_dice": {str(a): float(v) for a, v in dice.items()}}


def _geometry(value: object) -> dict:
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, Mapping) or not {"rows", "columns", "rle"} <= set(value):
        raise ValueError(f"a mask region's geometry is {{rows, columns, rle}}, not {str(value)[:80]}")
    return dict(value)


def mask_consensus(regions: pd.DataFrame, threshold: float = 0.5,
                   readers: Mapping[str, list[str]] | None = None) -> MaskConsensus:
    """STAPLE consensus of the readers' painted masks, per item and label, and each reader's Dice.

    `regions`: one row per painted slice with item, label, annotator, instance, frame and `points`,
    the mask's geometry `{rows, columns, rle}` as the service exports it (and the catalog stores it).
    The slices of an item-label that any reader painted form one volume, so STAPLE weighs readers
    over the whole lesion. `readers[item]`: who read the item; a reader there who painted nothing
    counts as an empty mask (drawing nothing is an answer); default: the readers who painted."""
    rows_out, readers_out, skipped = [], [], []
    for (item, label), group in regions.groupby(list(MASK_KEYS), sort=True):
        geometry = [_geometry(g) for g in group["points"]]
        shapes = {(int(g["rows"]), int(g["columns"])) for g in geometry}
        key = {"item": item, "label": label}
        if len(shapes) != 1:
            skipped.append({**key, "reason": f"slices of different sizes {sorted(shapes)}"})
            continue
        height, width = shapes.pop()
        slices = sorted({(int(i), int(f)) for i, f in zip(group["instance"], group["frame"])})
        where = {s: n for n, s in enumerate(slices)}
        who = sorted(set(group["annotator"]) | set((readers or {}).get(item, [])))
        if len(who) < 2:
            skipped.append({**key, "reason": f"one reader ({who[0]}); STAPLE needs two"})
            continue
        volumes = {a: np.zeros((len(slices), height, width), dtype=np.uint8) for a in who}
        for annotator, instance, frame, g in zip(group["annotator"], group["instance"], group["frame"], geometry):
            volumes[annotator][where[(int(instance), int(frame))]] |= decode_runs(g["rle"], height, width)
        try:
            result = staple(volumes, threshold=threshold)
        except ValueError as exc:  # nothing painted, or everything
            skipped.append({**key, "reason": str(exc)})
            continue
        consensus = sitk.GetArrayFromImage(result.consensus).astype(bool)
        for (instance, frame), n in where.items():
            if consensus[n].any():
                rows_out.append({**key, "instance": instance, "frame": frame, "rows": height, "columns": width,
                                 "rle": encode_runs(consensus[n]), "pixels": int(consensus[n].sum())})
        for r in result.readers.to_dict(orient="records"):
            readers_out.append({**key, "annotator": r["annotator"], "dice": float(r["dice"]),
                                "sensitivity": float(r["sensitivity"]), "specificity": float(r["specificity"]),
                                "pixels": int(volumes[r["annotator"]].sum())})
    keys = list(MASK_KEYS)
    return MaskConsensus(
        pd.DataFrame(rows_out, columns=[*keys, "instance", "frame", "rows", "columns", "rle", "pixels"]),
        pd.DataFrame(readers_out, columns=[*keys, "annotator", "dice", "sensitivity", "specificity", "pixels"]),
        pd.DataFrame(skipped, columns=[*keys, "reason"]))
