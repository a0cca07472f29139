"""The batched augmentation (compact_mnist.data): strength 0 is the identity, the shift, zoom, rotation direction and
elastic field do what their constants say."""

from __future__ import annotations

import math

import torch

from compact_mnist.data import ELASTIC_GRID, SHIFT_PIXELS, ZOOM, augment, elastic_field, warp


def lit_pixel(row: int, column: int, copies: int = 1) -> torch.Tensor:
    image = torch.zeros(copies, 1, 28, 28)
    image[:, 0, row, column] = 1
    return image


def centroid(images: torch.Tensor) -> torch.Tensor:
    """(row, column) centre of mass of each image's intensity, (N, 2)."""
    weights = images[:, 0]
    axis = torch.arange(28.0)
    total = weights.sum((1, 2))
    return torch.stack([(weights.sum(2) * axis).sum(1) / total, (weights.sum(1) * axis).sum(1) / total], 1)


def test_augmentation_of_strength_zero_is_the_identity():
    images = torch.rand(8, 1, 28, 28)
    generator = torch.Generator().manual_seed(0)
    torch.testing.assert_close(augment(images, generator, strength=0.0), images, atol=1e-5, rtol=0)
    torch.testing.assert_close(augment(images, generator, strength=0.0, elastic=2.0), images, atol=1e-5, rtol=0)


def test_a_lit_pixel_moves_by_at_most_the_stated_shift():
    images = lit_pixel(14, 14, copies=512)  # half a pixel from the centre: rotation and zoom barely move it
    moved = centroid(augment(images, torch.Generator().manual_seed(0), degrees=0, scale=0)) - 14
    assert moved.abs().max() <= SHIFT_PIXELS + 1e-4
    assert moved.abs().max() > 0.9 * SHIFT_PIXELS, "the shift is used, not just allowed"
    zoomed = centroid(augment(images, torch.Generator().manual_seed(1), degrees=0)) - 14
    # The zoom scales the shift, as the docstring says; bilinear resampling of a magnified pixel adds a little.
    assert zoomed.abs().max() <= SHIFT_PIXELS * (1 + ZOOM) + 0.5 * ZOOM + 0.05


def test_a_positive_angle_turns_the_digit_counter_clockwise_as_displayed():
    below_centre = lit_pixel(20, 14)  # row 20: below the centre (rows grow downwards)
    turned = warp(below_centre, *(torch.tensor([value]) for value in (math.pi / 2, 1.0, 0.0, 0.0)))
    row, column = centroid(turned)[0]
    assert abs(row - 13.5) < 0.6 and column > 19, "a quarter turn counter-clockwise takes the bottom to the right"


def test_the_elastic_field_is_bounded_smooth_and_used():
    pixels = 1.25
    field = elastic_field(256, 28, pixels, torch.Generator().manual_seed(0)) * 28 / 2  # back to pixels
    assert field.abs().max() <= pixels + 1e-5 and field.abs().max() > 0.9 * pixels
    spacing = 27 / (ELASTIC_GRID - 1)  # pixels between the coarse grid's points
    steps = torch.cat([(field[:, 1:] - field[:, :-1]).flatten(), (field[:, :, 1:] - field[:, :, :-1]).flatten()])
    assert steps.abs().max() <= 2 * pixels / spacing + 1e-5, "neighbours move alike: the field is smooth"
    moved = centroid(augment(lit_pixel(14, 14, 512), torch.Generator().manual_seed(0), 0, 0, 0, elastic=pixels))
    assert (moved - 14).abs().max() <= pixels + 1e-4
