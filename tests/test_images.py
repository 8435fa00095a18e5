"""read_image / read_mask / image_size: formats by content, EXIF orientation, modes, broken files, big images."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from image_factories import block_colours, blocks, jpeg_with_orientation, mask_png, save, truncated_copy
from PIL import Image, ImageFile

from floodlabel.core.data import images
from floodlabel.core.common.errors import AmbiguousMaskError, ImageReadError
from floodlabel.core.data.images import (MASK_LABELS_01, MASK_THRESHOLDED, image_size, read_image, read_mask,
                                    read_mask_reading)


def _check_rgb(a: np.ndarray, shape: tuple[int, int]) -> None:
    assert a.shape == (*shape, 3) and a.dtype == np.uint8
    assert a.flags.c_contiguous and a.flags.writeable


# ---- format from content, not extension --------------------------------------------------------------------


@pytest.mark.parametrize("fmt, kwargs", [("WEBP", {"lossless": True}), ("PNG", {}), ("BMP", {}), ("TIFF", {})])
def test_format_is_detected_from_content_not_extension(tmp_path, fmt, kwargs):
    rgb = np.random.default_rng(0).integers(0, 256, (7, 11, 3), dtype=np.uint8)
    path = save(tmp_path / "photo.jpg", rgb, fmt, **kwargs)
    out = read_image(path)
    _check_rgb(out, (7, 11))
    np.testing.assert_array_equal(out, rgb)
    assert image_size(path) == (11, 7)


# ---- EXIF orientation ------------------------------------------------------------------------------------


@pytest.mark.parametrize("orientation, rotate_ccw_quarters", [(1, 0), (3, 2), (6, -1), (8, 1)])
def test_exif_orientation_is_applied(tmp_path, orientation, rotate_ccw_quarters):
    stored = blocks(2, 3)  # 32 x 48: six distinct colour blocks
    path = jpeg_with_orientation(tmp_path / "o.jpg", stored, orientation)
    expected = np.rot90(stored, rotate_ccw_quarters)  # 6: rotate 90 deg clockwise to display; 8: counter-clockwise
    out = read_image(path)
    assert out.shape == expected.shape
    assert np.abs(block_colours(out) - block_colours(expected)).max() < 25
    assert image_size(path) == (expected.shape[1], expected.shape[0])


def test_exif_orientation_6_pixel_layout(tmp_path):
    stored = blocks(1, 2)  # left block red, right block green; 16 x 32
    out = read_image(jpeg_with_orientation(tmp_path / "o.jpg", stored, 6))
    assert out.shape == (32, 16, 3)
    top, bottom = out[8, 8].astype(int), out[24, 8].astype(int)
    assert top[0] > 200 and top[1] < 60  # stored left (red) ends up on top after a clockwise turn
    assert bottom[1] > 200 and bottom[0] < 60


def test_mask_gets_exif_orientation(tmp_path):
    stored = np.zeros((4, 6), np.uint8)
    stored[:, :2] = 255  # water in the left third
    exif = Image.Exif()
    exif[0x0112] = 8  # rotate 90 deg counter-clockwise to display
    path = save(tmp_path / "m.png", stored, "PNG", exif=exif)
    mask = read_mask(path)
    np.testing.assert_array_equal(mask, np.rot90(stored) > 127)
    assert mask[-2:].all() and not mask[:-2].any()  # the left columns became the bottom rows
    assert image_size(path) == (4, 6)


# ---- modes -------------------------------------------------------------------------------------------------


def test_sixteen_bit_grey_png_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 255, 256, 1000], [32768, 40000, 65280, 65535]], np.uint16)
    path = save(tmp_path / "g16.png", values, "PNG")
    assert Image.open(path).mode == "I;16"
    out = read_image(path)
    _check_rgb(out, (2, 4))
    expected = (values >> 8).astype(np.uint8)
    np.testing.assert_array_equal(out, np.repeat(expected[:, :, None], 3, axis=2))
    assert out[1, 3, 0] == 255 and out[0, 3, 0] == 3  # not clipped at 255, not wrapped


def test_sixteen_bit_rgb_png(tmp_path):
    rgb16 = np.zeros((3, 5, 3), np.uint16)
    rgb16[..., 0] = 65535
    rgb16[..., 1] = 32896  # 128 * 257
    rgb16[..., 2] = 2570  # 10 * 257
    path = tmp_path / "rgb16.png"
    assert cv2.imwrite(str(path), rgb16[:, :, ::-1])  # OpenCV writes BGR
    out = read_image(path)
    _check_rgb(out, (3, 5))
    np.testing.assert_array_equal(out[0, 0], [255, 128, 10])


@pytest.mark.parametrize("dtype", [">u2", "<u2"])
def test_sixteen_bit_tiff_both_byte_orders(tmp_path, dtype):
    values = np.array([[0, 513, 65535]], dtype=dtype)
    path = save(tmp_path / "g.tif", values, "TIFF")
    np.testing.assert_array_equal(read_image(path)[0, :, 0], [0, 2, 255])


def test_int32_and_float_images(tmp_path):
    ints = np.array([[0, 25700, 65535]], np.int32)  # fits 16 bits: scaled like 16-bit
    np.testing.assert_array_equal(read_image(save(tmp_path / "i.tif", ints, "TIFF"))[0, :, 1], [0, 100, 255])
    wide = np.array([[-100, 100, 155]], np.int32)  # does not fit: stretched min..max
    np.testing.assert_array_equal(read_image(save(tmp_path / "w.tif", wide, "TIFF"))[0, :, 1], [0, 200, 255])
    unit = np.array([[0.0, 0.5, 1.0, np.nan]], np.float32)  # in [0, 1]: times 255, NaN -> 0
    np.testing.assert_array_equal(read_image(save(tmp_path / "f.tif", unit, "TIFF"))[0, :, 2], [0, 128, 255, 0])


def test_palette_png_with_transparency(tmp_path):
    p = Image.new("P", (4, 2))
    p.putpalette([10, 20, 30, 200, 100, 50] + [0, 0, 0] * 254)
    p.putpixel((3, 1), 1)
    path = tmp_path / "p.png"
    p.save(path, transparency=bytes([0, 255]))  # index 0 fully transparent
    out = read_image(path)
    _check_rgb(out, (2, 4))
    np.testing.assert_array_equal(out[0, 0], [10, 20, 30])  # alpha dropped: the palette colour stays
    np.testing.assert_array_equal(out[1, 3], [200, 100, 50])


def test_cmyk_jpeg(tmp_path):
    path = save(tmp_path / "c.jpg", Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG", quality=95)
    assert Image.open(path).mode == "CMYK"
    out = read_image(path)
    _check_rgb(out, (8, 8))
    assert out[4, 4, 0] > 230 and out[4, 4, 1] < 25 and out[4, 4, 2] < 25  # red


def test_rgba_and_la_drop_alpha(tmp_path):
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., :3] = [10, 20, 30]
    rgba[0, 0, 3] = 255  # alpha 0 elsewhere: the stored colour is kept anyway
    np.testing.assert_array_equal(read_image(save(tmp_path / "a.png", rgba, "PNG")), rgba[..., :3])
    la = Image.fromarray(np.array([[[40, 0], [90, 255]]], np.uint8), "LA")
    out = read_image(save(tmp_path / "la.png", la, "PNG"))
    np.testing.assert_array_equal(out, [[[40, 40, 40], [90, 90, 90]]])


def test_greyscale_and_bilevel(tmp_path):
    grey = np.array([[0, 77, 255]], np.uint8)
    np.testing.assert_array_equal(read_image(save(tmp_path / "l.png", grey, "PNG"))[0], [[0] * 3, [77] * 3, [255] * 3])
    bilevel = Image.fromarray(np.array([[False, True]]))
    np.testing.assert_array_equal(read_image(save(tmp_path / "b.png", bilevel, "PNG"))[0], [[0] * 3, [255] * 3])


# ---- broken files ------------------------------------------------------------------------------------------


def _read_error(path, reader=read_image) -> str:
    with pytest.raises(ImageReadError) as info:
        reader(path)
    assert info.value.path == str(path) and str(path) in str(info.value)
    return info.value.reason


@pytest.mark.parametrize("reader", [read_image, read_mask, image_size])
def test_missing_empty_directory_and_garbage(tmp_path, reader):
    assert "no such file" in _read_error(tmp_path / "nope.jpg", reader)
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert "empty" in _read_error(tmp_path / "empty.jpg", reader)
    (tmp_path / "dir.jpg").mkdir()
    assert "directory" in _read_error(tmp_path / "dir.jpg", reader)
    (tmp_path / "junk.jpg").write_bytes(np.random.default_rng(1).bytes(5000))
    assert "not an image" in _read_error(tmp_path / "junk.jpg", reader)


def test_corrupt_jpeg_body(tmp_path):
    good = save(tmp_path / "good.jpg", blocks(4, 4), "JPEG")
    data = bytearray(good.read_bytes())
    data[200:] = b"\x00" * (len(data) - 200)  # valid header, destroyed scan data
    (tmp_path / "bad.jpg").write_bytes(bytes(data))
    _read_error(tmp_path / "bad.jpg")


@pytest.mark.parametrize("fmt, name", [("JPEG", "t.jpg"), ("PNG", "t.png"), ("WEBP", "t.webp")])
def test_truncated_files_raise_instead_of_returning_grey(tmp_path, fmt, name):
    rgb = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    full = save(tmp_path / f"full_{name}", rgb, fmt)
    cut = truncated_copy(full, tmp_path / name, keep=0.6)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    _read_error(cut)
    _read_error(cut, read_mask)


@pytest.mark.skipif(not hasattr(__import__("os"), "geteuid") or __import__("os").geteuid() == 0,
                    reason="root can read files without read permission")
def test_unreadable_permissions(tmp_path):
    path = save(tmp_path / "locked.png", blocks(), "PNG")
    path.chmod(0)
    try:
        assert "permission" in _read_error(path)
    finally:
        path.chmod(0o644)


# ---- size limits -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(12, 20000), (20000, 12)])
def test_very_long_image_loads(tmp_path, shape):
    rgb = np.zeros((*shape, 3), np.uint8)
    rgb[..., 1] = 200
    rgb[-1, -1] = [255, 0, 0]
    out = read_image(save(tmp_path / "long.png", rgb, "PNG"))
    _check_rgb(out, shape)
    np.testing.assert_array_equal(out, rgb)


def test_pillow_never_refuses_or_warns_before_our_limit():
    assert Image.MAX_IMAGE_PIXELS is None  # ours (images.MAX_IMAGE_PIXELS) is checked on every read instead


def test_images_over_the_limit_are_refused(tmp_path, monkeypatch):
    path = save(tmp_path / "big.png", np.zeros((100, 100, 3), np.uint8), "PNG")
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 9999)
    assert "too large" in _read_error(path)
    assert image_size(path) == (100, 100)  # the header can still be read


def test_strip_copy_handles_partial_last_strip(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "_STRIP_BYTES", 7 * 4 * 5)  # 5 rows of 7 px per strip; 23 rows -> 5 strips
    rgb = np.random.default_rng(3).integers(0, 256, (23, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(read_image(save(tmp_path / "s.png", rgb, "PNG")), rgb)


# ---- masks and headers -------------------------------------------------------------------------------------


def test_anti_aliased_mask_threshold(tmp_path):
    values = np.array([[0, 1, 126, 127], [128, 129, 200, 255]], np.uint8)
    mask = read_mask(mask_png(tmp_path / "m.png", values))
    assert mask.dtype == bool and mask.shape == (2, 4)
    np.testing.assert_array_equal(mask, values > 127)


def test_colour_sixteen_bit_and_alpha_masks(tmp_path):
    rgb = np.zeros((1, 4, 3), np.uint8)
    rgb[0, 1] = 255  # white
    rgb[0, 2] = [200, 0, 0]  # a red label counts as water too
    rgb[0, 3] = [100, 100, 100]
    np.testing.assert_array_equal(read_mask(save(tmp_path / "rgb.png", rgb, "PNG")), [[False, True, True, False]])
    rgba = np.full((1, 3, 4), 255, np.uint8)
    rgba[0, 1, 3] = 0  # transparent white is not water
    np.testing.assert_array_equal(read_mask(save(tmp_path / "rgba.png", rgba, "PNG")), [[True, False, True]])
    m16 = np.array([[0, 32767, 32768, 65535]], np.uint16)
    np.testing.assert_array_equal(read_mask(save(tmp_path / "m16.png", m16, "PNG")), [[False, False, True, True]])


def test_read_mask_checks_the_expected_size(tmp_path):
    path = mask_png(tmp_path / "m.png", np.zeros((3, 5), np.uint8))
    assert read_mask(path, size=(5, 3)).shape == (3, 5)
    assert "5x3" in _read_error(path, lambda p: read_mask(p, size=(3, 5)))


def test_image_size_reads_only_the_header(tmp_path, monkeypatch):
    paths = [jpeg_with_orientation(tmp_path / "a.jpg", blocks(2, 3), 6), save(tmp_path / "b.png", blocks(1, 2), "PNG")]

    def no_decoding(self):
        raise AssertionError("image_size decoded the image")

    monkeypatch.setattr(Image.Image, "load", no_decoding)
    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    assert image_size(paths[0]) == (32, 48)
    assert image_size(paths[1]) == (32, 16)


# ---- 0/1 label masks and ambiguous masks ---------------------------------------------------------------------


def test_zero_one_mask_reads_one_as_water(tmp_path):
    values = np.array([[0, 1, 1], [0, 0, 1]], np.uint8)
    reading = read_mask_reading(mask_png(tmp_path / "m.png", values))
    assert reading.encoding == MASK_LABELS_01
    np.testing.assert_array_equal(reading.water, values == 1)
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png"), values == 1)
    m16 = np.array([[0, 1, 1, 0]], np.uint16)
    np.testing.assert_array_equal(read_mask(save(tmp_path / "m16.png", m16, "PNG")), [[False, True, True, False]])


def test_zero_one_palette_mask_reads_index_one_as_water(tmp_path):
    values = np.array([[0, 1, 1], [1, 0, 0]], np.uint8)
    dark = Image.fromarray(values, "P")
    dark.putpalette([0, 0, 0, 1, 1, 1])  # both indices drawn (nearly) black: a label mask
    reading = read_mask_reading(save(tmp_path / "dark.png", dark, "PNG"))
    assert reading.encoding == MASK_LABELS_01
    np.testing.assert_array_equal(reading.water, values == 1)
    shown = Image.fromarray(values, "P")
    shown.putpalette([0, 0, 0, 255, 255, 255])  # index 1 drawn white: both readings agree, an ordinary mask
    reading = read_mask_reading(save(tmp_path / "shown.png", shown, "PNG"))
    assert reading.encoding == MASK_THRESHOLDED
    np.testing.assert_array_equal(reading.water, values == 1)
    reversed_ = Image.fromarray(values, "P")
    reversed_.putpalette([255, 255, 255, 0, 0, 0])  # index 0 bright, index 1 dark: never guessed
    assert "index 0 is drawn bright" in _read_error(save(tmp_path / "rev.png", reversed_, "PNG"), read_mask)


@pytest.mark.parametrize("values", [[[0, 1, 2]], [[0, 2, 2]], [[0, 100, 127]]])
def test_class_index_masks_are_ambiguous(tmp_path, values):
    path = mask_png(tmp_path / "m.png", np.array(values, np.uint8))
    with pytest.raises(AmbiguousMaskError) as info:
        read_mask(path)
    assert isinstance(info.value, ImageReadError)
    assert "ambiguous mask" in info.value.reason and "{" + ", ".join(map(str, sorted(set(values[0])))) + "}" in \
        info.value.reason


def test_palette_class_indices_drawn_dark_are_ambiguous(tmp_path):
    im = Image.fromarray(np.array([[0, 1, 2]], np.uint8), "P")
    im.putpalette([0, 0, 0, 1, 1, 1, 2, 2, 2])
    assert "palette indices {0, 1, 2}" in _read_error(save(tmp_path / "p.png", im, "PNG"), read_mask)


def test_blank_and_anti_aliased_masks_stay_thresholded(tmp_path):
    blank = read_mask_reading(mask_png(tmp_path / "blank.png", np.zeros((2, 2), np.uint8)))
    assert blank.encoding == MASK_THRESHOLDED and not blank.water.any()
    soft = read_mask_reading(mask_png(tmp_path / "soft.png", np.array([[0, 1, 2, 255]], np.uint8)))
    assert soft.encoding == MASK_THRESHOLDED
    np.testing.assert_array_equal(soft.water, [[False, False, False, True]])
