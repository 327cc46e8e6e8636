"""Image files: the up-front scan (missing, corrupt, truncated), pixel types to 8-bit RGB, EXIF orientation."""

import cv2
import numpy as np
import pytest
import torch
from coco_files import annotation_entry, image_entry, write_coco, write_image
from PIL import Image, ImageOps

from trainwright.data import COCODetectionDataset, DatasetError, MissingImagesError
from trainwright.data.image_io import apply_orientation, read_rgb_image
from trainwright.data.image_scan import NOT_FOUND, jpeg_is_complete, probe_image, scan_image_files


def dataset_of(tmp_path, names_and_sizes, **kwargs) -> COCODetectionDataset:
    """A dataset over files already written to tmp_path / 'images', one box per image."""
    images = [image_entry(i + 1, name, w, h) for i, (name, w, h) in enumerate(names_and_sizes)]
    annotations = [annotation_entry(i + 1, i + 1, [1, 1, 4, 4]) for i in range(len(images))]
    return COCODetectionDataset(*write_coco(tmp_path, images, annotations), **kwargs)


@pytest.fixture
def images_dir(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    return folder


def test_missing_images_are_listed_up_front(tmp_path, images_dir):
    write_image(images_dir / "a.jpg")
    with pytest.raises(MissingImagesError) as info:
        dataset_of(tmp_path, [("a.jpg", 64, 48), ("gone.jpg", 64, 48), ("gone2.png", 64, 48)])
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, DatasetError)
    message = str(info.value)
    assert "2 of the 3 images" in message and "gone.jpg: file not found" in message and "gone2.png" in message


def test_corrupt_empty_and_truncated_files_are_found_before_training(tmp_path, images_dir):
    write_image(images_dir / "ok.jpg")
    (images_dir / "text.jpg").write_bytes(b"this is not an image")
    (images_dir / "empty.png").write_bytes(b"")
    write_image(images_dir / "full.jpg", 200, 150)
    data = (images_dir / "full.jpg").read_bytes()
    (images_dir / "cut.jpg").write_bytes(data[: len(data) * 2 // 3])  # header fine, data cut
    write_image(images_dir / "full.png", 200, 150)
    data = (images_dir / "full.png").read_bytes()
    (images_dir / "cut.png").write_bytes(data[: len(data) // 2])
    files = [("ok.jpg", 64, 48), ("text.jpg", 64, 48), ("empty.png", 64, 48), ("cut.jpg", 200, 150),
             ("cut.png", 200, 150)]
    with pytest.raises(DatasetError) as info:
        dataset_of(tmp_path, files)
    message = str(info.value)
    assert not isinstance(info.value, FileNotFoundError) and "\n" not in message
    assert "4 of the 5 images" in message
    assert "text.jpg: not an image file" in message and "empty.png: not an image file" in message
    assert "cut.jpg: truncated" in message and "cut.png: cannot be decoded" in message
    assert "ok.jpg" not in message


def test_a_jpeg_with_data_after_its_end_is_complete(tmp_path, images_dir):
    """Cameras append data after the end-of-image marker; the image is whole and must load."""
    write_image(images_dir / "tail.jpg", 40, 30)
    pixels = read_rgb_image(str(images_dir / "tail.jpg"))
    with open(images_dir / "tail.jpg", "ab") as handle:
        handle.write(b"\x00" * 100 + b"trailer data")
    assert probe_image(str(images_dir / "tail.jpg")) == (1, 40, 30)
    image, _ = dataset_of(tmp_path, [("tail.jpg", 40, 30)], input_size=None)[0]
    np.testing.assert_array_equal(image.permute(1, 2, 0).numpy(), pixels)


def test_jpeg_end_marker_search_skips_the_segments_before_the_scan(tmp_path):
    """An end-of-image marker inside an earlier segment (an EXIF thumbnail, a comment) does not make it whole."""
    path = tmp_path / "commented.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (120, 160, 3), np.uint8)).save(path, quality=90)
    payload = b"thumbnail \xff\xd8 ... \xff\xd9 end"
    data = path.read_bytes()
    data = data[:2] + b"\xff\xfe" + (len(payload) + 2).to_bytes(2, "big") + payload + data[2:]
    path.write_bytes(data)
    assert probe_image(str(path)) == (1, 160, 120)
    assert jpeg_is_complete(data)
    assert not jpeg_is_complete(data[: len(data) - 50])
    assert not jpeg_is_complete(data[:200])
    path.write_bytes(data[: len(data) - 50])
    assert probe_image(str(path)).startswith("truncated")


def test_scan_reports_size_orientation_and_problems(images_dir):
    write_image(images_dir / "a.jpg", 50, 20)
    write_image(images_dir / "r.jpg", 50, 20, orientation=6)
    scan = scan_image_files([str(images_dir / n) for n in ("a.jpg", "r.jpg", "none.jpg")], workers=2)
    assert scan.widths.tolist() == [50, 20, 0] and scan.heights.tolist() == [20, 50, 0]
    assert scan.orientations.tolist() == [6 if i == 1 else 1 for i in range(3)]
    assert scan.problems == {2: NOT_FOUND}


def test_unsupported_pixel_type_is_found_up_front(tmp_path, images_dir):
    Image.fromarray(np.random.default_rng(0).random((12, 16), np.float32)).save(images_dir / "float.tif")
    with pytest.raises(DatasetError, match=r"float.tif: OpenCV cannot decode it \(format TIFF, pixel type F\)"):
        dataset_of(tmp_path, [("float.tif", 16, 12)])


def write_pixel_types(folder) -> dict[str, np.ndarray]:
    """Files of every common pixel type and the 8-bit RGB each must load as."""
    rgb = np.zeros((12, 16, 3), np.uint8)
    rgb[:, :8] = (200, 40, 10)
    rgb[:, 8:] = (10, 90, 250)
    gray = rgb[..., 1].copy()
    expected = {}
    Image.fromarray(gray).save(folder / "gray.png")
    Image.fromarray(gray).save(folder / "gray.jpg", quality=100)
    expected["gray.png"] = expected["gray.jpg"] = np.repeat(gray[..., None], 3, axis=2)
    Image.fromarray(np.dstack([rgb, np.full((12, 16), 7, np.uint8)])).save(folder / "rgba.png")
    expected["rgba.png"] = rgb
    Image.fromarray(rgb).quantize(4).save(folder / "palette.png")
    expected["palette.png"] = rgb
    cv2.imwrite(str(folder / "gray16.png"), gray.astype(np.uint16) * 257)
    expected["gray16.png"] = np.repeat(gray[..., None], 3, axis=2)
    cv2.imwrite(str(folder / "rgb16.png"), rgb[..., ::-1].astype(np.uint16) * 257)
    expected["rgb16.png"] = rgb
    Image.fromarray(gray).convert("LA").save(folder / "gray_alpha.png")
    expected["gray_alpha.png"] = np.repeat(gray[..., None], 3, axis=2)
    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg", quality=100)
    expected["cmyk.jpg"] = rgb
    return expected


def test_every_pixel_type_loads_as_8_bit_rgb(tmp_path, images_dir):
    expected = write_pixel_types(images_dir)
    ds = dataset_of(tmp_path, [(name, 16, 12) for name in expected], input_size=None)
    for i, (name, want) in enumerate(expected.items()):
        image, _ = ds[i]
        assert image.shape == (3, 12, 16) and image.dtype == torch.float32, name
        got = image.permute(1, 2, 0).numpy()
        tolerance = 12 if name.endswith(".jpg") else 0
        assert np.abs(got - want).max() <= tolerance, (name, got[0, 0], got[0, -1], want[0, 0], want[0, -1])


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_is_applied_as_pillow_and_viewers_do(tmp_path, orientation):
    path = tmp_path / f"o{orientation}.png"
    write_image(path, 10, 6, orientation=orientation)
    want = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    np.testing.assert_array_equal(read_rgb_image(str(path)), want)
    np.testing.assert_array_equal(read_rgb_image(str(path), orientation=1), np.asarray(Image.open(path)))
    stored = np.asarray(Image.open(path).convert("RGB"))
    np.testing.assert_array_equal(apply_orientation(stored, orientation), want)


def test_exif_rotated_jpeg_boxes_refer_to_the_displayed_image(tmp_path, images_dir):
    """A portrait photo stored as a 96x64 landscape grid tagged 'rotate 90 clockwise' (orientation 6).

    Displayed it is 64 wide and 96 high, with the stored top-left red block at the top-right; the annotation
    tool drew the box there. The sample must show the red block inside that box.
    """
    write_image(images_dir / "portrait.jpg", 96, 64, orientation=6)
    box = [64 - 64 // 3, 0, 64 // 3, 96 // 3]  # the red block as displayed: x from 43 to 64, y from 0 to 32
    _, annotations = write_coco(tmp_path, [image_entry(1, "portrait.jpg", 64, 96)],
                                [annotation_entry(1, 1, box)])
    ds = COCODetectionDataset(images_dir, annotations, input_size=None)
    record = ds.records[0]
    assert (record.width, record.height, record.orientation) == (64, 96, 6)
    image, targets = ds[0]
    assert image.shape == (3, 96, 64)
    cx, cy, w, h = targets[0, 1:].tolist()
    inside = image[:, int(cy - h / 2) + 2:int(cy + h / 2) - 2, int(cx - w / 2) + 2:int(cx + w / 2) - 2]
    assert float(inside[0].mean()) > 200 and float(inside[1].mean()) < 80  # red
    outside = image[:, 40:, :30]
    assert abs(float(outside.mean()) - 120) < 10
    # the same pixels as OpenCV's and Pillow's own EXIF handling
    reference = cv2.cvtColor(cv2.imread(str(images_dir / "portrait.jpg")), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(image.permute(1, 2, 0).numpy().astype(np.uint8), reference)


def test_decoded_size_must_match_the_scanned_size(tmp_path, images_dir):
    write_image(images_dir / "a.png", 20, 10)
    ds = dataset_of(tmp_path, [("a.png", 20, 10)], input_size=None)
    write_image(images_dir / "a.png", 30, 10)  # replaced after the dataset was built
    with pytest.raises(DatasetError, match="a.png: decodes to 30x10 pixels, but was 20x10"):
        ds[0]
