"""SSD augmentation: boxes follow every transform. Worked by hand for flip and resize; for the
random ones, images whose objects are solid rectangles of unique colours on black, so after any
transform each box must still frame exactly its colour (the colour fills it and appears nowhere
outside it, up to one pixel of interpolation at the edges)."""

from __future__ import annotations

import numpy as np

from ssd.augment import Augmentation, augment, colour_matrix, expand, hflip, photometric, random_crop, resize

COLOURS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]], np.uint8)


def painted(width: int, height: int, boxes: list[list[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Black image, box k filled with COLOURS[k]; boxes on whole pixels."""
    image = np.zeros((height, width, 3), np.uint8)
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        image[y0:y1, x0:x1] = COLOURS[k]
    return image, np.array(boxes, np.float32), np.arange(len(boxes), dtype=np.int32)


def assert_boxes_frame_their_colours(image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, slack: int = 1) -> None:
    height, width = image.shape[:2]
    for box, label in zip(boxes, labels, strict=True):
        x0, y0, x1, y1 = box
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height, (box, image.shape)
        colour = COLOURS[label]
        inner = image[int(np.ceil(y0)) + slack : int(y1) - slack, int(np.ceil(x0)) + slack : int(x1) - slack]
        if inner.size:
            assert np.abs(inner.astype(int) - colour).max() <= 2, f"box {box} does not hold colour {colour}"
        outside = np.ones((height, width), bool)
        outside[
            max(0, int(y0) - slack) : int(np.ceil(y1)) + slack, max(0, int(x0) - slack) : int(np.ceil(x1)) + slack
        ] = False
        exact = np.all(np.abs(image.astype(int) - colour) <= 2, axis=-1)
        assert not (exact & outside).any(), f"colour {colour} shows outside box {box}"


def test_flip_worked_by_hand() -> None:
    image, boxes, labels = painted(100, 50, [[10, 20, 30, 40]])
    flipped, moved = hflip(image, boxes)
    np.testing.assert_array_equal(moved, [[70, 20, 90, 40]])  # x -> 100 - x
    assert_boxes_frame_their_colours(flipped, moved, labels, slack=0)


def test_resize_worked_by_hand() -> None:
    image, boxes, labels = painted(200, 100, [[20, 10, 60, 50]])
    stretched, b1 = resize(image, boxes, 100, "stretch")  # x / 2, y / 1
    np.testing.assert_allclose(b1, [[10, 10, 30, 50]])
    boxed, b2 = resize(image, boxes, 100, "letterbox")  # scale 1/2 -> 100 x 50, centred: 25 rows above
    np.testing.assert_allclose(b2, [[10, 30, 30, 50]])
    assert boxed[:25].max() == 0 and boxed[75:].max() == 0
    for out, b in ((stretched, b1), (boxed, b2)):
        assert out.shape == (100, 100, 3)
        assert_boxes_frame_their_colours(out, b, labels)


def test_expand_moves_boxes_with_the_image() -> None:
    image, boxes, labels = painted(40, 30, [[5, 5, 15, 25], [20, 2, 38, 10]])
    for seed in range(20):
        out, moved = expand(image, boxes, np.random.default_rng(seed), max_ratio=4.0, fill=np.zeros(3))
        assert 40 <= out.shape[1] <= 160 and 30 <= out.shape[0] <= 120
        shift = moved - boxes  # one offset for every box
        np.testing.assert_allclose(shift, np.tile(shift[:1], (2, 1)))
        assert_boxes_frame_their_colours(out, moved, labels, slack=0)


def test_random_crop_keeps_boxes_whose_centre_is_inside_clipped() -> None:
    image, boxes, labels = painted(120, 90, [[10, 10, 40, 40], [60, 20, 110, 80], [5, 60, 30, 85]])
    seen_crops = 0
    for seed in range(200):
        out, kept, kept_labels = random_crop(image, boxes, labels, np.random.default_rng(seed))
        seen_crops += out.shape[:2] != image.shape[:2]
        assert len(kept) >= 1  # an object-free patch is never chosen
        assert_boxes_frame_their_colours(out, kept, kept_labels, slack=0)
    assert seen_crops > 100  # most draws crop


def test_the_whole_chain_keeps_boxes_on_their_objects() -> None:
    image, boxes, labels = painted(96, 64, [[8, 8, 30, 40], [50, 10, 90, 30], [40, 40, 70, 60]])
    geometric = Augmentation(photometric=False)
    for seed in range(100):
        rng = np.random.default_rng(seed)
        out, b, lab = augment(image, boxes, labels, rng, geometric)
        assert_boxes_frame_their_colours(out, b, lab, slack=0)
        small, sb = resize(out, b, 64)
        assert_boxes_frame_their_colours(small, sb, lab, slack=2)


def test_ignore_regions_follow_like_boxes_but_do_not_steer_the_crop() -> None:
    image, boxes, _ = painted(60, 40, [[5, 5, 20, 20], [30, 10, 55, 35]])
    labels = np.array([0, -1], np.int32)  # the second is an ignore region (painted in COLOURS[1])
    for seed in range(100):
        out, kept, kept_labels = random_crop(image, boxes, labels, np.random.default_rng(seed))
        assert 0 in kept_labels  # the crop must hold an object; an ignore region alone is not enough
        assert_boxes_frame_their_colours(out, kept, np.where(kept_labels < 0, 1, kept_labels), slack=0)


def test_photometric_changes_colours_only() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)
    outs = [photometric(image, np.random.default_rng(seed)) for seed in range(30)]
    assert all(o.shape == image.shape and o.dtype == np.uint8 for o in outs)
    assert sum(not np.array_equal(o, image) for o in outs) >= 25  # four coin flips: almost always a change


def test_colour_matrix_keeps_grey_and_turns_by_the_angle() -> None:
    np.testing.assert_allclose(colour_matrix(1.0, 0.0), np.eye(3), atol=1e-6)
    grey = np.array([90.0, 90.0, 90.0])
    for saturation, hue in ((0.5, 0.0), (1.5, 18.0), (1.0, -18.0)):
        np.testing.assert_allclose(colour_matrix(saturation, hue) @ grey, grey, atol=1e-3)  # no chroma: unchanged
    red = np.array([200.0, 40.0, 40.0])
    flat = colour_matrix(0.0, 0.0) @ red  # saturation 0: the luma, 0.299 R + 0.587 G + 0.114 B, in every channel
    np.testing.assert_allclose(flat, [0.299 * 200 + 0.587 * 40 + 0.114 * 40] * 3, atol=1e-3)
    # Two turns of 9 degrees make one of 18; a turn keeps the chroma's length (saturation).
    np.testing.assert_allclose(colour_matrix(1.0, 9.0) @ colour_matrix(1.0, 9.0), colour_matrix(1.0, 18.0), atol=1e-5)


def test_vertical_flip_and_quarter_turns_worked_by_hand() -> None:
    from ssd.augment import rot90, vflip

    image, boxes, labels = painted(100, 50, [[10, 20, 30, 40], [60, 0, 100, 5]])
    flipped, moved = vflip(image, boxes)
    np.testing.assert_array_equal(moved, [[10, 10, 30, 30], [60, 45, 100, 50]])  # y -> 50 - y
    assert_boxes_frame_their_colours(flipped, moved, labels, slack=0)
    turned, moved = rot90(image, boxes, 1)  # (x, y) -> (y, 100 - x): 50 wide, 100 high
    assert turned.shape == (100, 50, 3)
    np.testing.assert_array_equal(moved, [[20, 70, 40, 90], [0, 0, 5, 40]])
    assert_boxes_frame_their_colours(turned, moved, labels, slack=0)
    for turns in (2, 3, 4):
        turned, moved = rot90(image, boxes, turns)
        assert_boxes_frame_their_colours(turned, moved, labels, slack=0)
    np.testing.assert_array_equal(rot90(image, boxes, 2)[1], [[70, 10, 90, 30], [0, 45, 40, 50]])  # both axes
    np.testing.assert_array_equal(rot90(image, boxes, 4)[1], boxes)


def test_top_down_draws_all_eight_symmetries_and_nothing_when_off() -> None:
    image, boxes, labels = painted(40, 40, [[2, 4, 12, 10]])
    config = Augmentation(photometric=False, expand=1.0, crop=False, flip=True, top_down=True)
    seen = set()
    for seed in range(200):
        out, moved, kept = augment(image, boxes, labels, np.random.default_rng(seed), config)
        assert_boxes_frame_their_colours(out, moved, kept, slack=0)
        seen.add(tuple(moved[0].tolist()))
    assert len(seen) == 8  # the box's 8 images under the square's symmetries
    plain = Augmentation(photometric=False, expand=1.0, crop=False, flip=True)
    a, b = np.random.default_rng(1), np.random.default_rng(1)
    augment(image, boxes, labels, a, plain)
    b.random()  # the flip's draw: the only one without top_down
    assert a.random() == b.random()
