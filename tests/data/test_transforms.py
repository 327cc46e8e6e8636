import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainwright.data.sample import DetectionSample
from trainwright.data.transforms import (
    HorizontalFlip,
    HSVJitter,
    Letterbox,
    MixUp,
    Mosaic,
    Normalize,
    RandomAffine,
    detection_train_transforms,
    get_mosaic_coordinate,
)

MAGENTA = (255, 0, 255)
GREY = 100
PROPS = settings(max_examples=20, deadline=None)


def sample_with_rect(h, w, box, crowd=False):
    """A grey image with a filled magenta rectangle exactly covering box (x1, y1, x2, y2), end-exclusive."""
    image = np.full((h, w, 3), GREY, np.uint8)
    x1, y1, x2, y2 = box
    image[y1:y2, x1:x2] = MAGENTA
    return DetectionSample(image, np.array([box], np.float32), [3], [crowd])


def plain(h, w):
    return DetectionSample(np.full((h, w, 3), GREY, np.uint8), np.zeros((0, 4)), [], [])


def magenta_pixels(image):
    """(ys, xs) of pixels that are mostly magenta (also after a 50 % blend with grey)."""
    image = image.astype(np.int32)
    mask = (image[..., 0] - image[..., 1] > 60) & (image[..., 2] - image[..., 1] > 60)
    return np.nonzero(mask)


def assert_boxes_inside(sample):
    b = sample.boxes
    assert (b[:, 0] >= 0).all() and (b[:, 1] >= 0).all()
    assert (b[:, 2] <= sample.width).all() and (b[:, 3] <= sample.height).all()
    assert (b[:, 2] >= b[:, 0]).all() and (b[:, 3] >= b[:, 1]).all()


def assert_box_covers_rect(sample, tight: bool, tol: float = 1.5):
    """The magenta pixels lie inside the (single) box; with tight=True they also reach each of its sides."""
    ys, xs = magenta_pixels(sample.image)
    if len(sample.boxes) == 0:
        return
    x1, y1, x2, y2 = sample.boxes[0]
    if not tight and len(xs) == 0:
        return  # a rotated box's corner may reach into the image while the shape itself stays outside
    assert len(xs) > 0, "a box survived but its pixels are gone"
    assert xs.min() >= x1 - tol and xs.max() + 1 <= x2 + tol and ys.min() >= y1 - tol and ys.max() + 1 <= y2 + tol
    if tight:
        np.testing.assert_allclose([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], [x1, y1, x2, y2], atol=tol)


@st.composite
def rect_samples(draw, min_side=6):
    h, w = draw(st.integers(24, 80)), draw(st.integers(24, 80))
    x1, y1 = draw(st.integers(0, w - min_side)), draw(st.integers(0, h - min_side))
    x2, y2 = draw(st.integers(x1 + min_side, w)), draw(st.integers(y1 + min_side, h))
    return sample_with_rect(h, w, (x1, y1, x2, y2))


seeds = st.integers(0, 2**32 - 1)


@PROPS
@given(rect_samples(), st.integers(16, 96), st.integers(16, 96), st.booleans())
def test_letterbox_keeps_boxes_on_their_pixels(sample, out_h, out_w, center):
    out = Letterbox((out_h, out_w), center=center, min_box_size=0)(sample, None)
    assert out.image.shape == (out_h, out_w, 3)
    assert_boxes_inside(out)
    assert len(out.boxes) == 1
    # the resized image's sides are rounded to whole pixels while the boxes scale by the exact ratio, so the
    # far edge of an upscaled rectangle may sit up to half a pixel further out than its box
    assert_box_covers_rect(out, tight=True, tol=2.0)


@PROPS
@given(rect_samples(), seeds)
def test_horizontal_flip_keeps_boxes_on_their_pixels(sample, seed):
    out = HorizontalFlip(prob=1.0)(sample, np.random.default_rng(seed))
    assert_boxes_inside(out)
    assert_box_covers_rect(out, tight=True, tol=0)


@PROPS
@given(rect_samples(), seeds, st.sampled_from([None, (40, 56)]))
def test_affine_without_rotation_keeps_boxes_tight(sample, seed, output_size):
    affine = RandomAffine(degrees=0, shear=0, translate=0.2, scales=(0.6, 1.4), output_size=output_size, min_box_size=0,
                          min_area_ratio=0)
    out = affine(sample, np.random.default_rng(seed))
    assert_boxes_inside(out)
    assert_box_covers_rect(out, tight=True)


@PROPS
@given(rect_samples(), seeds)
def test_affine_with_rotation_and_shear_boxes_enclose_pixels(sample, seed):
    out = RandomAffine(degrees=45, shear=10, translate=0.1, scales=(0.5, 1.5))(sample, np.random.default_rng(seed))
    assert_boxes_inside(out)
    assert_box_covers_rect(out, tight=False)


@PROPS
@given(rect_samples(), seeds, st.integers(0, 3))
def test_mosaic_then_affine_keeps_boxes_on_their_pixels(sample, seed, position):
    size = (sample.height, sample.width)
    others = [plain(*size) for _ in range(3)]
    tiles = others[:position] + [sample] + others[position:]
    first, rest = tiles[0], tiles[1:]
    first.additional_samples = rest
    rng = np.random.default_rng(seed)
    mosaic = Mosaic(size, min_box_size=0)(first, rng)
    assert mosaic.image.shape == (2 * size[0], 2 * size[1], 3)
    assert_boxes_inside(mosaic)
    assert_box_covers_rect(mosaic, tight=True, tol=0)
    out = RandomAffine(degrees=0, shear=0, output_size=size, min_box_size=2, min_area_ratio=0)(mosaic, rng)
    assert out.image.shape == (*size, 3)
    assert_boxes_inside(out)
    assert_box_covers_rect(out, tight=True)


@PROPS
@given(rect_samples(), seeds, st.integers(24, 80), st.integers(24, 80))
def test_mixup_keeps_partner_boxes_on_their_pixels(partner, seed, h, w):
    sample = plain(h, w)
    sample.additional_samples = [partner]
    out = MixUp(prob=1.0, min_box_size=4)(sample, np.random.default_rng(seed))  # tinier boxes blur away
    assert out.image.shape == (h, w, 3)
    assert_boxes_inside(out)
    assert_box_covers_rect(out, tight=True)


@PROPS
@given(rect_samples(), seeds)
def test_full_training_pipeline_boxes_stay_inside(sample, seed):
    rng = np.random.default_rng(seed)
    size = (sample.height, sample.width)
    for transform in detection_train_transforms(size, mixup_prob=0.5):
        if transform.additional_samples_count:
            sample.additional_samples = [sample_with_rect(*size, (2, 3, 12, 14)) for _ in
                                         range(transform.additional_samples_count)]
        sample = transform(sample, rng)
        assert_boxes_inside(sample)
    assert sample.image.shape == (*size, 3)


def test_hsv_jitter_changes_colours_not_boxes():
    sample = sample_with_rect(20, 30, (2, 3, 10, 12))
    out = HSVJitter(prob=1.0, hgain=0.5, sgain=0.5, vgain=0.5)(sample, np.random.default_rng(0))
    np.testing.assert_array_equal(out.boxes, sample.boxes)
    assert out.image.dtype == np.uint8 and not np.array_equal(out.image, sample.image)
    same = HSVJitter(prob=1.0, hgain=0, sgain=0, vgain=0)(sample, np.random.default_rng(0))
    assert np.abs(same.image.astype(int) - sample.image).max() <= 2  # colour space round trip only


def test_normalize():
    sample = sample_with_rect(4, 4, (0, 0, 2, 2))
    out = Normalize(mean=(100, 100, 100), std=(2, 2, 2))(sample)
    assert out.image.dtype == np.float32
    np.testing.assert_allclose(out.image[3, 3], [0, 0, 0])
    np.testing.assert_allclose(out.image[0, 0], [77.5, -50, 77.5])


def test_crowd_flags_follow_their_boxes_through_mosaic():
    tiles = [sample_with_rect(20, 20, (2, 2, 18, 18), crowd=i % 2 == 1) for i in range(4)]
    tiles[0].additional_samples = tiles[1:]
    out = Mosaic((20, 20), center_range=(1, 1))(tiles[0], np.random.default_rng(0))
    assert len(out.boxes) == 4
    np.testing.assert_array_equal(out.is_crowd, [False, True, False, True])


def test_get_mosaic_coordinate_hand_computed():
    # canvas 200 x 160 (input 100 x 80), centre (70, 60), tile 50 wide 90 high
    assert get_mosaic_coordinate(0, 70, 60, 50, 90, 100, 80) == ((20, 0, 70, 60), (0, 30, 50, 90))
    assert get_mosaic_coordinate(1, 70, 60, 50, 90, 100, 80) == ((70, 0, 120, 60), (0, 30, 50, 90))
    assert get_mosaic_coordinate(2, 70, 60, 50, 90, 100, 80) == ((20, 60, 70, 150), (0, 0, 50, 90))
    assert get_mosaic_coordinate(3, 140, 150, 50, 90, 100, 80) == ((140, 150, 160, 200), (0, 0, 20, 50))
    with pytest.raises(ValueError, match="mosaic_index"):
        get_mosaic_coordinate(4, 70, 60, 50, 90, 100, 80)


@PROPS
@given(st.integers(0, 3), st.integers(8, 64), st.integers(8, 64), st.integers(4, 90), st.integers(4, 90),
       st.integers(0, 100), st.integers(0, 100))
def test_get_mosaic_coordinate_regions_match(index, input_h, input_w, w, h, px, py):
    xc, yc = px * 2 * input_w // 100, py * 2 * input_h // 100  # (no st.floats: the suite flushes denormals)
    (x1, y1, x2, y2), (sx1, sy1, sx2, sy2) = get_mosaic_coordinate(index, xc, yc, w, h, input_h, input_w)
    assert 0 <= x1 <= x2 <= 2 * input_w and 0 <= y1 <= y2 <= 2 * input_h
    assert 0 <= sx1 <= sx2 <= w and 0 <= sy1 <= sy2 <= h
    assert (x2 - x1, y2 - y1) == (sx2 - sx1, sy2 - sy1)
    corner = [(x2, y2), (x1, y2), (x2, y1), (x1, y1)][index]
    assert corner == (xc, yc)  # every tile touches the centre


def test_invalid_arguments_are_named():
    with pytest.raises(ValueError, match="prob"):
        HorizontalFlip(prob=2)
    with pytest.raises(ValueError, match="output_size"):
        Letterbox(output_size=(0, 10))
    with pytest.raises(ValueError, match="scales"):
        RandomAffine(scales=(2, 1))
    with pytest.raises(ValueError, match="Mosaic needs 3"):
        Mosaic((10, 10))(plain(10, 10), np.random.default_rng(0))
