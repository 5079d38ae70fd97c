import pytest

from fluxgate.model.pricing import estimate, tiles


@pytest.mark.parametrize(
    ("size", "expected"), [((512, 512), 1), ((513, 512), 2), ((1024, 768), 4), ((1920, 1920), 16)]
)
def test_tiles_are_512_squares_rounded_up(size, expected):
    assert tiles(*size) == expected


def test_published_price_for_a_default_image():
    cost = estimate(1024, 768, 25)
    assert cost.output_tiles == 4 and cost.input_tiles == 0
    assert cost.usd == pytest.approx(25 * 4 * 0.00041)


def test_reference_images_are_charged_per_input_tile():
    cost = estimate(1024, 1024, 10, [(511, 511), (300, 200)])
    assert cost.input_tiles == 2
    assert cost.usd == pytest.approx(10 * (4 * 0.00041 + 2 * 0.00021))


def test_a_cache_hit_charges_nothing():
    assert estimate(512, 512, 4).as_dict(charged=False)["charged_usd"] == 0.0
