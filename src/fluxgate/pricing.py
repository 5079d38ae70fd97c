"""Cost estimates from Cloudflare's published flux-2-dev price.

$0.00021 per input 512x512 tile per step and $0.00041 per output tile per step. Reported
with every generation so that clients can see what a request costs and that a cache hit
costs nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

INPUT_TILE_STEP_USD = 0.00021
OUTPUT_TILE_STEP_USD = 0.00041


def tiles(width: int, height: int) -> int:
    return math.ceil(width / 512) * math.ceil(height / 512)


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


def estimate(
    width: int, height: int, steps: int, reference_sizes: Iterable[tuple[int, int]] = ()
) -> CostEstimate:
    out_tiles = tiles(width, height)
    in_tiles = sum(tiles(w, h) for w, h in reference_sizes)
    usd = steps * (out_tiles * OUTPUT_TILE_STEP_USD + in_tiles * INPUT_TILE_STEP_USD)
    return CostEstimate(steps, out_tiles, in_tiles, round(usd, 6))
