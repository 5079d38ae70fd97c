"""Cost estimates from Cloudflare's published prices, one rule per model.

Reported with every generation (a cache hit costs nothing) and reserved against the key's
daily budget before the model runs. The prices are Cloudflare's, as its pricing page lists
them (https://developers.cloudflare.com/workers-ai/platform/pricing/, "Image model
pricing", page dated 2026-08-28) and each model's page repeats:

- ``@cf/black-forest-labs/flux-2-dev``: $0.00021 per input 512x512 tile, per step, and
  $0.00041 per output 512x512 tile, per step.
- ``@cf/black-forest-labs/flux-2-klein-4b``: $0.000059 per input 512x512 tile and $0.000287
  per output 512x512 tile; no per-step factor (the schedule is fixed at 4 steps).
- ``@cf/black-forest-labs/flux-2-klein-9b``: $0.015 for the first megapixel of output
  (1024x1024), $0.002 per subsequent megapixel, $0.002 per megapixel of input images.

Rounding is ours: tiles are counted whole (a 513-px side is two tiles), and for the 9B
model a started megapixel of output counts as a whole one, as does the input images' total
(the page defines a megapixel as 1024x1024 and does not say how a fraction is billed; four
references under 512x512 make at most one). Rounding up makes the reservation an upper
bound, so a budget is never overrun by an estimate that was too low.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

TILE = 512
MEGAPIXEL = 1024 * 1024
PRICING_PAGE = "https://developers.cloudflare.com/workers-ai/platform/pricing/"


def tiles(width: int, height: int) -> int:
    return math.ceil(width / TILE) * math.ceil(height / TILE)


def megapixels(width: int, height: int) -> int:
    """Started megapixels (1024x1024 each), counted whole."""
    return math.ceil(width * height / MEGAPIXEL)


@dataclass(frozen=True)
class CostEstimate:
    steps: int
    output_tiles: int
    input_tiles: int
    usd: float

    def as_dict(self, *, charged: bool) -> dict[str, float | int]:
        return {
            "steps": self.steps,
            "output_tiles": self.output_tiles,
            "input_tiles": self.input_tiles,
            "estimated_usd": self.usd,
            "charged_usd": self.usd if charged else 0.0,
        }


class PriceRule(Protocol):
    """One model's published price."""

    def usd(self, width: int, height: int, steps: int, references: list[tuple[int, int]]) -> float:
        """The price of one image of ``width`` x ``height`` from ``references``."""
        ...

    def describe(self) -> dict[str, object]:
        """The price as ``/v1/models`` lists it (unit prices in USD and their basis)."""
        ...


@dataclass(frozen=True)
class PerTileStep:
    """Per 512x512 tile and per step, input and output (flux-2-dev)."""

    input_tile_step: float
    output_tile_step: float

    def usd(self, width: int, height: int, steps: int, references: list[tuple[int, int]]) -> float:
        inputs = sum(tiles(w, h) for w, h in references)
        return steps * (
            tiles(width, height) * self.output_tile_step + inputs * self.input_tile_step
        )

    def describe(self) -> dict[str, object]:
        return {
            "basis": "tile_step",
            "input_tile_step_usd": self.input_tile_step,
            "output_tile_step_usd": self.output_tile_step,
            "source": PRICING_PAGE,
        }


@dataclass(frozen=True)
class PerTile:
    """Per 512x512 tile, input and output, whatever the steps (flux-2-klein-4b)."""

    input_tile: float
    output_tile: float

    def usd(self, width: int, height: int, steps: int, references: list[tuple[int, int]]) -> float:
        inputs = sum(tiles(w, h) for w, h in references)
        return tiles(width, height) * self.output_tile + inputs * self.input_tile

    def describe(self) -> dict[str, object]:
        return {
            "basis": "tile",
            "input_tile_usd": self.input_tile,
            "output_tile_usd": self.output_tile,
            "source": PRICING_PAGE,
        }


@dataclass(frozen=True)
class PerMegapixel:
    """A first output megapixel, then each further one, plus input megapixels
    (flux-2-klein-9b)."""

    first_output: float
    next_output: float
    input: float

    def usd(self, width: int, height: int, steps: int, references: list[tuple[int, int]]) -> float:
        output = megapixels(width, height)
        inputs = math.ceil(sum(w * h for w, h in references) / MEGAPIXEL)
        return self.first_output + (output - 1) * self.next_output + inputs * self.input

    def describe(self) -> dict[str, object]:
        return {
            "basis": "megapixel",
            "first_output_megapixel_usd": self.first_output,
            "next_output_megapixel_usd": self.next_output,
            "input_megapixel_usd": self.input,
            "source": PRICING_PAGE,
        }


FLUX_2_DEV_PRICE = PerTileStep(input_tile_step=0.00021, output_tile_step=0.00041)
FLUX_2_KLEIN_4B_PRICE = PerTile(input_tile=0.000059, output_tile=0.000287)
FLUX_2_KLEIN_9B_PRICE = PerMegapixel(first_output=0.015, next_output=0.002, input=0.002)


def estimate(
    width: int,
    height: int,
    steps: int,
    reference_sizes: Iterable[tuple[int, int]] = (),
    price: PriceRule = FLUX_2_DEV_PRICE,
) -> CostEstimate:
    references = list(reference_sizes)
    usd = price.usd(width, height, steps, references)
    in_tiles = sum(tiles(w, h) for w, h in references)
    return CostEstimate(steps, tiles(width, height), in_tiles, round(usd, 6))
