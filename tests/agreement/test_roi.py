"""ROI agreement: box IoU/Dice by hand and against rasterised masks, one-to-one matching against
brute force over permutations, detection F1, box consensus, mask Dice and SimpleITK's STAPLE on
masks with known noise, and the degenerate inputs (no boxes, one reader, empty masks)."""
from itertools import permutations

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.agreement import roi

TOL = 1e-12


def _raster(box, shape=(40, 40)) -> np.ndarray:
    """An integer box as a pixel mask (rows y, columns x): pixels x0..x1-1, y0..y1-1."""
    x0, y0, x1, y1 = (int(v) for v in roi.as_boxes(box)[0])
    mask = np.zeros(shape, dtype=np.uint8)
    mask[y0:y1, x0:x1] = 1
    return mask


integer_box = st.tuples(*[st.integers(0, 39)] * 4)


@pytest.mark.parametrize(("first", "second", "iou", "dice"), [
    ((0, 0, 10, 10), (5, 0, 15, 10), 50 / 150, 0.5),  # half shifted: 50 shared of 150
    ((0, 0, 10, 10), (0, 0, 5, 5), 25 / 100, 50 / 125),  # contained
    ((0, 0, 10, 10), (0, 0, 10, 10), 1.0, 1.0),
    ((0, 0, 10, 10), (10, 0, 20, 10), 0.0, 0.0),  # touching edges share no area
    ((0, 0, 10, 10), (30, 30, 40, 40), 0.0, 0.0),
    ((10, 10, 0, 0), (5, 0, 15, 10), 50 / 150, 0.5),  # corners in the other order
    ((2, 3, 6, 9), (4, 5, 10, 7), 4 / (24 + 12 - 4), 8 / 36),
    ((0, 0, 0, 10), (0, 0, 0, 10), 0.0, 0.0),  # zero area on both sides: nothing to share
])
def test_box_iou_and_dice_by_hand(first, second, iou, dice):
    assert abs(roi.box_iou(first, second) - iou) < TOL
    assert abs(roi.box_dice(first, second) - dice) < TOL
    assert abs(roi.box_iou(second, first) - iou) < TOL


@settings(max_examples=80, deadline=None)
@given(integer_box, integer_box)
def test_box_iou_and_dice_equal_those_of_the_rasterised_boxes(first, second):
    a, b = _raster(first), _raster(second)
    union = np.logical_or(a, b).sum()
    expected_iou = np.logical_and(a, b).sum() / union if union else 0.0
    assert abs(roi.box_iou(first, second) - expected_iou) < TOL
    if a.sum() + b.sum():
        assert abs(roi.box_dice(first, second) - roi.mask_dice(a, b)) < TOL


def test_non_finite_coordinates_are_an_error():
    with pytest.raises(ValueError, match="finite"):
        roi.iou_matrix([(0, 0, np.nan, 1)], [(0, 0, 1, 1)])


def _brute_force_total(iou: np.ndarray, threshold: float) -> float:
    """Best total IoU of admissible pairs over every one-to-one assignment (padded with dummies)."""
    n, m = iou.shape
    size = max(n, m)
    padded = np.zeros((size, size))
    padded[:n, :m] = np.where((iou >= threshold) & (iou > 0), iou, 0.0)
    return max(padded[np.arange(size), list(perm)].sum() for perm in permutations(range(size)))


box_lists = st.lists(st.tuples(st.integers(0, 8), st.integers(0, 8), st.integers(2, 12), st.integers(2, 12))
                     .map(lambda b: (b[0], b[1], b[0] + b[2], b[1] + b[3])), max_size=5)


@settings(max_examples=150, deadline=None)
@given(box_lists, box_lists, st.sampled_from([0.1, 0.3, 0.5, 0.7]))
def test_matching_is_the_best_one_to_one_assignment(first, second, threshold):
    match = roi.match_boxes(first, second, threshold)
    iou = roi.iou_matrix(first, second)
    assert len(set(match.first_index)) == len(set(match.second_index)) == match.n_matches  # one to one
    assert (match.iou >= threshold).all() and (match.iou > 0).all()
    assert np.allclose(match.iou, iou[match.first_index, match.second_index])
    assert abs(match.iou.sum() - _brute_force_total(iou, threshold)) < 1e-9
    assert (match.n_first, match.n_second) == (len(first), len(second))


def test_matching_pairs_one_box_with_one_and_f1_counts_the_rest():
    # B's large box overlaps both of A's boxes; only one may be credited
    a = [(0, 0, 10, 10), (0, 0, 10, 9)]
    b = [(0, 0, 10, 10), (50, 50, 60, 60), (70, 70, 80, 80)]
    match = roi.match_boxes(a, b)
    assert match.n_matches == 1 and (match.first_index[0], match.second_index[0]) == (0, 0)
    assert match.f1 == 1 / 2.5
    assert roi.match_boxes(a, [], 0.5).f1 == 0.0
    assert np.isnan(roi.match_boxes([], [], 0.5).f1)  # nobody drew: F1 undefined, not perfect


def test_pairs_below_the_threshold_do_not_steer_the_assignment():
    # unrestricted, the best total IoU pairs A0-B1 (0.75) and A1-B0 (0.40, then dropped); among pairs
    # at or above 0.5 the best is A0-B0 (0.538) and A1-B1 (0.571): two matches, not one
    a, b = [(3, 0, 13, 10), (4, 0, 15, 10)], [(0, 0, 10, 10), (1, 0, 12, 10)]
    match = roi.match_boxes(a, b, 0.5)
    assert match.first_index.tolist() == [0, 1] and match.second_index.tolist() == [0, 1]
    assert abs(match.iou.sum() - (7 / 13 + 8 / 14)) < TOL


def test_a_pair_below_the_threshold_is_not_a_match():
    a, b = [(0, 0, 10, 10)], [(5, 0, 15, 10)]  # IoU 1/3
    assert roi.match_boxes(a, b, 0.5).n_matches == 0
    assert roi.match_boxes(a, b, 1 / 3).n_matches == 1
    with pytest.raises(ValueError, match="threshold"):
        roi.match_boxes(a, b, 0.0)


def _table(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["item", "label", "annotator", "x0", "y0", "x1", "y1"])


NONE = (None, None, None, None)


def test_box_agreement_per_pair_and_pooled():
    frame = _table([
        ("i1", "nodule", "A", 0, 0, 10, 10), ("i1", "nodule", "B", 1, 0, 11, 10),
        ("i1", "nodule", "B", 40, 40, 50, 50), ("i1", "nodule", "C", 0, 0, 10, 10),
        ("i2", "nodule", "A", *NONE), ("i2", "nodule", "B", 0, 0, 5, 5),  # A read i2, saw nothing
        ("i3", "nodule", "A", *NONE), ("i3", "nodule", "B", *NONE),  # neither saw anything
        ("i1", "mass", "A", 0, 0, 20, 20), ("i1", "mass", "B", 0, 0, 20, 20)])  # C did not read 'mass'
    result = roi.box_agreement(frame)
    pairs = result.pairs.set_index(["item", "label", "first", "second"])
    assert len(pairs) == 3 + 1 + 1 + 1
    ab = pairs.loc[("i1", "nodule", "A", "B")]
    assert (ab["n_first"], ab["n_second"], ab["matches"]) == (1, 2, 1)
    assert abs(ab["mean_iou"] - 90 / 110) < TOL and abs(ab["f1"] - 1 / 1.5) < TOL
    assert pairs.loc[("i2", "nodule", "A", "B"), "f1"] == 0.0
    assert np.isnan(pairs.loc[("i3", "nodule", "A", "B"), "f1"])
    summary = result.summary()
    # A|B pooled: matches 1 (i1 nodule) + 0 + 0 + 1 (mass) over boxes (3 + 1 + 0 + 2) / 2
    assert summary["pairwise"]["A|B"]["matches"] == 2 and summary["pairwise"]["A|B"]["f1"] == 2 / 3
    assert summary["pairwise"]["A|C"]["f1"] == 1.0 and summary["pairwise"]["A|C"]["mean_iou"] == 1.0
    assert summary["per_label"]["mass"]["f1"] == 1.0
    overall = summary["overall"]
    assert overall["matches"] == 2 + 1 + 1 and overall["boxes"] == 6 + 2 + 3  # A|B, A|C, B|C
    assert overall["n_comparisons"] == 6 and overall["f1"] == 4 / 5.5


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["i1", "i2"]), st.sampled_from("ABCD"), st.booleans(),
                          st.integers(0, 8), st.integers(0, 8), st.integers(2, 10), st.integers(2, 10)),
                min_size=2, max_size=25))
def test_box_agreement_rows_equal_match_boxes_on_each_pair(drawn):
    rows = [(item, "n", reader, *((x, y, x + w, y + h) if box else NONE)) for item, reader, box, x, y, w, h in drawn]
    frame = _table(rows)
    if frame["annotator"].nunique() < 2:
        return
    result = roi.box_agreement(frame, threshold=0.4)
    expected = 0
    for item, group in frame.groupby("item"):
        readers = sorted(group["annotator"].unique())
        boxes = {r: [row[3:] for row in rows if row[0] == item and row[2] == r and row[3] is not None] for r in readers}
        for i, first in enumerate(readers):
            for second in readers[i + 1:]:
                match = roi.match_boxes(boxes[first], boxes[second], 0.4)
                row = result.pairs[(result.pairs["item"] == item) & (result.pairs["first"] == first)
                                   & (result.pairs["second"] == second)].iloc[0]
                assert (row["n_first"], row["n_second"], row["matches"]) == (match.n_first, match.n_second, match.n_matches)
                assert abs(row["sum_iou"] - match.iou.sum()) < TOL
                assert (np.isnan(row["f1"]) and np.isnan(match.f1)) or row["f1"] == match.f1
                expected += 1
    assert len(result.pairs) == expected


def test_box_agreement_degenerate_tables():
    with pytest.raises(ValueError, match="at least two readers"):
        roi.box_agreement(_table([("i1", "n", "A", 0, 0, 1, 1)]))
    with pytest.raises(ValueError, match="rows \\[2\\]"):
        roi.box_agreement(_table([("i1", "n", "A", 0, 0, 1, 1), ("i1", "n", "B", 0, 0, None, 1)]))
    with pytest.raises(ValueError, match="lacks column"):
        roi.box_agreement(pd.DataFrame({"item": ["i"], "annotator": ["A"]}))
    # readers who never read the same item: no comparisons, pooled figures undefined (null)
    result = roi.box_agreement(_table([("i1", "n", "A", 0, 0, 1, 1), ("i2", "n", "B", 0, 0, 1, 1)]))
    assert result.pairs.empty and result.summary()["overall"]["f1"] is None


def _jittered_readers(rng, truth, n_readers, spread=1.5):
    return [tuple(np.asarray(truth) + rng.normal(0, spread, 4)) for _ in range(n_readers)]


def test_box_consensus_recovers_the_truth_and_drops_a_lone_box():
    rng = np.random.default_rng(4)
    truths = [(20, 30, 60, 80), (100, 100, 130, 140)]
    rows = []
    for reader in "ABCDE":
        for truth in truths:
            rows.append(("img", "nodule", reader, *_jittered_readers(rng, truth, 1)[0]))
    rows.append(("img", "nodule", "C", 200, 200, 220, 220))  # seen by C alone
    rows.append(("img2", "nodule", "A", *NONE))
    consensus = roi.box_consensus(_table(rows))
    assert len(consensus) == 2 and (consensus["n_readers"] == 5).all() and (consensus["n_read"] == 5).all()
    match = roi.match_boxes(consensus[list(roi.COORDINATES)].to_numpy(), truths)
    assert match.n_matches == 2 and (match.iou >= 0.7).all()
    assert len(roi.box_consensus(_table(rows), min_readers=1)) == 3


def test_box_consensus_of_ten_jittery_readers_with_misses_and_false_alarms():
    """Ten readers see each true box with probability 0.8, jitter its corners by 5 % of its size and
    add a lone false box on one image in five: every true box drawn by a majority (6 of 10) is found
    at IoU >= 0.7, the others and the false boxes are not."""
    rng = np.random.default_rng(11)
    rows, truths, seen_by = [], {}, {}
    for item in range(40):
        truths[item] = []
        for _ in range(rng.integers(1, 4)):
            x, y, w, h = *rng.uniform(0, 400, 2), *rng.uniform(15, 80, 2)
            truths[item].append((x, y, x + w, y + h))
        seen_by[item] = np.zeros(len(truths[item]), dtype=int)
        for reader in range(10):
            drawn = []
            for k, t in enumerate(truths[item]):
                if rng.random() < 0.8:
                    drawn.append(np.add(t, rng.normal(0, 0.05, 4) * np.tile(np.subtract(t[2:], t[:2]), 2)))
                    seen_by[item][k] += 1
            if rng.random() < 0.2:
                x, y = rng.uniform(0, 450, 2)
                drawn.append((x, y, x + 20, y + 20))
            rows += [(f"i{item}", "lesion", f"r{reader}", *box) for box in drawn or [NONE]]
    consensus = roi.box_consensus(_table(rows))
    for item, true_boxes in truths.items():
        mine = consensus[consensus["item"] == f"i{item}"][list(roi.COORDINATES)].to_numpy()
        match = roi.match_boxes(mine, true_boxes, 0.7)
        assert match.n_matches == len(mine)  # no consensus box without a true box
        assert sorted(match.second_index.tolist()) == np.flatnonzero(seen_by[item] >= 6).tolist()
    assert len(consensus) >= 0.9 * sum(map(len, truths.values()))


def test_box_consensus_median_and_mean_by_hand():
    frame = _table([("i", "n", "A", 0, 0, 10, 10), ("i", "n", "B", 1, 1, 11, 11), ("i", "n", "C", 5, 0, 12, 10)])
    median = roi.box_consensus(frame, threshold=0.3).iloc[0]
    assert [median[c] for c in roi.COORDINATES] == [1, 0, 11, 10]
    mean = roi.box_consensus(frame, threshold=0.3, method="mean").iloc[0]
    assert [mean[c] for c in roi.COORDINATES] == [2, 1 / 3, 11, 31 / 3]
    assert median["annotators"] == "A|B|C"


def test_box_consensus_needs_a_majority_of_those_who_read():
    frame = _table([("i", "n", "A", 0, 0, 10, 10), ("i", "n", "B", 0, 0, 10, 10),
                    ("i", "n", "C", *NONE), ("i", "n", "D", *NONE)])
    assert roi.box_consensus(frame).empty  # 2 of 4 is not a majority
    assert len(roi.box_consensus(frame, min_readers=2)) == 1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("ABCD"), st.integers(0, 20), st.integers(0, 20),
                          st.integers(2, 10), st.integers(2, 10)), max_size=10),
       st.sampled_from([0.3, 0.5, 0.7]))
def test_clusters_hold_one_box_per_reader_around_an_anchor(drawn, threshold):
    readers = [d[0] for d in drawn]
    boxes = [(x, y, x + w, y + h) for _, x, y, w, h in drawn]
    clusters = roi.cluster_boxes(boxes, readers, threshold)
    assert sorted(set(clusters.tolist())) == list(range(len(set(clusters.tolist()))))
    for cluster in set(clusters.tolist()):
        members = np.flatnonzero(clusters == cluster)
        assert len({readers[i] for i in members}) == len(members)
        iou = roi.iou_matrix(np.asarray(boxes)[members], np.asarray(boxes)[members])
        assert ((iou >= threshold) | np.eye(len(members), dtype=bool)).all(axis=1).any()  # some member is the anchor
    # two boxes of different readers that overlap enough are never both left alone
    singles = [i for i in range(len(boxes)) if (clusters == clusters[i]).sum() == 1]
    iou = roi.iou_matrix(np.asarray(boxes)[singles], np.asarray(boxes)[singles])
    for i, j in zip(*np.nonzero(iou >= threshold)):
        assert i == j or readers[singles[i]] == readers[singles[j]]
    renamed = roi.cluster_boxes(boxes, [{"A": "Z", "B": "Y", "C": "X", "D": "W"}[r] for r in readers], threshold)
    assert (renamed == clusters).all()


# ---------------------------------------------------------------- masks

def _disk(shape=(64, 64), centre=(32, 32), radius=15) -> np.ndarray:
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return ((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius ** 2).astype(np.uint8)


def test_mask_dice_by_hand_and_from_files(tmp_path):
    a = np.zeros((10, 10), np.uint8)
    b = np.zeros((10, 10), np.uint8)
    a[:4, :5] = 1  # 20 pixels
    b[2:6, :5] = 1  # 20 pixels, 10 shared
    assert roi.mask_dice(a, b) == 0.5
    for suffix in (".nii.gz", ".nrrd", ".png"):
        sitk.WriteImage(sitk.GetImageFromArray(a * 255 if suffix == ".png" else a), str(tmp_path / f"a{suffix}"))
        sitk.WriteImage(sitk.GetImageFromArray(b), str(tmp_path / f"b{suffix}"))
        assert roi.mask_dice(tmp_path / f"a{suffix}", str(tmp_path / f"b{suffix}")) == 0.5
    assert roi.mask_dice(sitk.GetImageFromArray(a), b) == 0.5
    assert np.isnan(roi.mask_dice(np.zeros((3, 3)), np.zeros((3, 3))))
    labels = a + 2 * b  # 1 = a only, 2 = b only, 3 = both
    assert roi.mask_dice(labels, labels, label=3) == 1.0


def test_masks_on_different_grids_or_missing_files_are_errors(tmp_path):
    with pytest.raises(ValueError, match="same pixel grid"):
        roi.mask_dice(np.zeros((4, 4)), np.zeros((4, 5)))
    spaced = sitk.GetImageFromArray(np.zeros((4, 4), np.uint8))
    spaced.SetSpacing((0.5, 0.5))
    with pytest.raises(ValueError, match="same pixel grid"):
        roi.mask_dice(spaced, np.zeros((4, 4), np.uint8))
    with pytest.raises(FileNotFoundError, match="absent.nii.gz"):
        roi.mask_dice(tmp_path / "absent.nii.gz", np.zeros((4, 4)))
    with pytest.raises(TypeError, match="numpy array"):
        roi.mask_dice([[0, 1]], np.zeros((1, 2)))


def test_pairwise_dice_keys_every_reader_pair():
    truth = _disk()
    shifted = np.roll(truth, 3, axis=1)
    dice = roi.pairwise_dice({"B": shifted, "A": truth, "C": truth})
    assert set(dice) == {"A|B", "A|C", "B|C"} and dice["A|C"] == 1.0
    assert dice["A|B"] == roi.mask_dice(truth, shifted) < 1.0
    with pytest.raises(ValueError, match="at least 2 readers"):
        roi.pairwise_dice({"A": truth})


def test_staple_gives_the_noisy_reader_lower_specificity():
    rng = np.random.default_rng(0)
    truth = _disk()
    careful = {name: truth.copy() for name in ("A", "B", "C")}
    careful["B"][30:34, 18:22] = 0  # 16 missed pixels at the disk's left edge
    noisy = truth | (rng.random(truth.shape) < 0.05).astype(np.uint8)  # scattered false positives
    result = roi.staple({**careful, "D": noisy})
    readers = result.readers.set_index("annotator")
    assert readers.loc["D", "specificity"] < readers.drop("D")["specificity"].min() - 0.02
    assert readers.loc["B", "sensitivity"] < readers.loc["A", "sensitivity"]
    probability = sitk.GetArrayFromImage(result.probability)
    assert probability.min() >= 0 and probability.max() <= 1
    consensus = sitk.GetArrayFromImage(result.consensus)
    assert roi.mask_dice(consensus, truth) > 0.99 and set(np.unique(consensus)) == {0, 1}
    assert abs(readers.loc["D", "dice"] - roi.mask_dice(consensus, noisy)) < TOL
    assert result.summary()["consensus_pixels"] == int(consensus.sum())


def test_staple_keeps_the_geometry_and_reads_one_label_of_a_label_map():
    truth = _disk()
    image = sitk.GetImageFromArray(truth * 2)  # the structure is label 2
    image.SetSpacing((0.7, 0.7))
    image.SetOrigin((10.0, -5.0))
    other = sitk.GetImageFromArray(truth * 2)
    other.CopyInformation(image)
    result = roi.staple({"A": image, "B": other}, label=2)
    assert result.consensus.GetSpacing() == (0.7, 0.7) and result.consensus.GetOrigin() == (10.0, -5.0)
    assert (sitk.GetArrayFromImage(result.consensus) == truth).all()


def test_staple_on_volumes_read_from_files(tmp_path):
    zz, yy, xx = np.mgrid[:20, :32, :32]
    sphere = ((zz - 10) ** 2 + (yy - 16) ** 2 + (xx - 16) ** 2 <= 64).astype(np.uint8)
    shrunk = ((zz - 10) ** 2 + (yy - 16) ** 2 + (xx - 16) ** 2 <= 36).astype(np.uint8)
    paths = {}
    for reader, mask in {"A": sphere, "B": sphere, "C": shrunk}.items():
        image = sitk.GetImageFromArray(mask)
        image.SetSpacing((0.8, 0.8, 2.5))
        paths[reader] = tmp_path / f"{reader}.nii.gz"
        sitk.WriteImage(image, str(paths[reader]))
    result = roi.staple(paths)
    readers = result.readers.set_index("annotator")
    assert readers.loc["C", "sensitivity"] < 0.7 < readers.loc["A", "sensitivity"]
    assert result.consensus.GetSpacing() == pytest.approx((0.8, 0.8, 2.5))
    assert (sitk.GetArrayFromImage(result.consensus) == sphere).all()


def test_staple_degenerate_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="at least 2 readers"):
        roi.staple({"A": _disk()})
    with pytest.raises(ValueError, match="no reader marks any pixel"):
        roi.staple({"A": np.zeros((5, 5), np.uint8), "B": np.zeros((5, 5), np.uint8)})
    with pytest.raises(ValueError, match="every reader marks every"):
        roi.staple({"A": np.ones((5, 5), np.uint8), "B": np.ones((5, 5), np.uint8)})


def test_multilabel_staple_finds_the_label_a_reader_under_draws():
    truth = np.zeros((60, 60), np.uint8)
    truth[5:25, 5:25] = 1
    truth[30:55, 30:55] = 2
    under = truth.copy()
    under[5:25, 5:15] = 0  # reader B drew half of structure 1
    result = roi.multilabel_staple({"A": truth, "B": under, "C": truth})
    assert result.labels == [0, 1, 2]
    assert (sitk.GetArrayFromImage(result.consensus) == truth).all()
    readers = result.readers.set_index(["annotator", "label"])
    assert abs(readers.loc[("B", 1), "sensitivity"] - 0.5) < 1e-6
    assert readers.loc[("B", 2), "sensitivity"] == pytest.approx(1.0)
    assert readers.loc[("B", 0), "specificity"] < readers.loc[("A", 0), "specificity"]
    confusion = result.confusion["B"]
    assert confusion.loc[0, 1] == pytest.approx(0.5) and np.allclose(confusion.sum(axis=0), 1.0)
    assert (confusion.loc["undecided"] == 0).all()
    assert result.summary()["undecided_pixels"] == 0
