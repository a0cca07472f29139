"""The network beyond the card's checks: eval mode is deterministic and training mode drops out, the receptive field,
the layer table's parameter and multiply-accumulate counts against hand counts, the CPU's channels-last layout, and
test-time views."""

from __future__ import annotations

import pytest
import torch

from model import PRESETS, SHIFTS, Net, count_parameters, layer_table, shifted
from train import build_model, parse_args


def test_eval_mode_is_deterministic():
    model, images = Net().eval(), torch.randn(16, 1, 28, 28)
    assert torch.equal(model(images), model(images))


def test_train_mode_uses_dropout():
    torch.manual_seed(0)
    model, images = Net(dropout=0.5).train(), torch.randn(16, 1, 28, 28)
    assert not torch.equal(model(images), model(images))


@pytest.mark.parametrize("preset", PRESETS)
def test_last_convolution_sees_the_whole_digit(preset):
    convolutions = [row for row in layer_table(Net(preset)) if row["layer"].startswith(("Conv", "Separable"))]
    assert convolutions[-1]["rf"] >= 28


def test_layer_table_adds_up_to_the_parameter_count():
    model = Net()
    assert sum(row["params"] for row in layer_table(model)) == count_parameters(model)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_on_a_cpu_the_model_trains_channels_last_and_computes_the_same_function(preset):
    args = parse_args(["--model", preset, "--device", "cpu"])
    model = build_model(args.recipe, args.device).eval()
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in model.parameters() if p.dim() == 4)
    default_layout = Net(preset).eval()
    default_layout.load_state_dict(model.state_dict())
    images = torch.randn(8, 1, 28, 28)
    torch.testing.assert_close(model(images), default_layout(images), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "spec, params",
    [
        ("4,8", 44 + (288 + 16) + 90),  # 3x3 convolution: 9 * 4 * 8 weights, BatchNorm 2 * 8
        ("4,8s", 44 + (36 + 32 + 16) + 90),  # separable: a 3x3 per input channel, then 4 * 8 weights
        ("4,8p", 44 + (32 + 16) + 90),  # 1x1 convolution
        ("4d,8", 44 + (288 + 16) + 90),  # a stride-2 3x3 convolution has a plain one's weights
    ],
)
def test_each_block_kind_costs_what_it_should(spec, params):
    model = Net(spec)
    assert count_parameters(model) == params == sum(row["params"] for row in layer_table(model))
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize(
    "spec, macs",
    [  # the first block, 1 -> 4 channels, then the block under test, then the 4 -> 10 or 8 -> 10 linear layer
        ("4,8", 9 * 1 * 4 * 28 * 28 + 9 * 4 * 8 * 28 * 28 + 80),  # 3x3: 9 per input-output channel pair per pixel
        ("4,8s", 9 * 4 * 28 * 28 + 9 * 4 * 28 * 28 + 4 * 8 * 28 * 28 + 80),  # separable: 9 per input channel, then 1x1
        ("4,8p", 9 * 4 * 28 * 28 + 4 * 8 * 28 * 28 + 80),  # 1x1: one per channel pair per pixel
        ("4d,8", 9 * 4 * 14 * 14 + 9 * 4 * 8 * 14 * 14 + 80),  # stride 2: a quarter of the output pixels
    ],
)  # fmt: skip
def test_the_layer_table_counts_the_multiply_accumulates_a_hand_count_gives(spec, macs):
    assert sum(row["macs"] for row in layer_table(Net(spec))) == macs


def test_a_strided_convolution_halves_the_map_like_a_pool_at_a_quarter_of_the_arithmetic():
    strided, pooled = layer_table(Net("8d,16")), layer_table(Net("8,M,16"))
    assert strided[0]["shape"] == pooled[1]["shape"] == (8, 14, 14)
    assert strided[1]["shape"] == pooled[2]["shape"] == (16, 14, 14)
    assert strided[0]["macs"] * 4 == pooled[0]["macs"]
    assert [row["rf"] for row in strided[:2]] == [3, 7]  # each output pixel sees 3x3, then 3 + 2 * 2


def test_a_view_moves_the_digit_one_pixel_and_the_edge_that_comes_in_repeats_the_old_one():
    images = torch.arange(2 * 28 * 28, dtype=torch.float32).reshape(2, 1, 28, 28)
    assert torch.equal(shifted(images, 0, 0), images)
    right, left = shifted(images, 1, 0), shifted(images, -1, 0)
    assert torch.equal(right[..., 1:], images[..., :-1]) and torch.equal(right[..., 0], images[..., 0])
    assert torch.equal(left[..., :-1], images[..., 1:]) and torch.equal(left[..., -1], images[..., -1])
    down, up = shifted(images, 0, 1), shifted(images, 0, -1)
    assert torch.equal(down[..., 1:, :], images[..., :-1, :]) and torch.equal(down[..., 0, :], images[..., 0, :])
    assert torch.equal(up[..., :-1, :], images[..., 1:, :]) and torch.equal(up[..., -1, :], images[..., -1, :])
    assert sorted(SHIFTS) == [(-1, 0), (0, -1), (0, 0), (0, 1), (1, 0)]
    with pytest.raises(ValueError, match="at most one pixel"):
        shifted(images, 2, 0)


def test_with_views_a_network_reads_the_mean_probability_of_its_five_views_in_eval_mode_only():
    torch.manual_seed(0)
    network, images = Net(dropout=0.0).eval(), torch.randn(7, 1, 28, 28)
    expected = torch.stack([network(shifted(images, *shift)).exp() for shift in SHIFTS]).mean(0)
    network.views = True
    torch.testing.assert_close(network(images).exp(), expected)
    torch.testing.assert_close(network(images).exp().sum(1), torch.ones(7))
    training = network.train()(images)
    network.views = False
    assert torch.equal(training, network(images)), "training sees the image alone"
