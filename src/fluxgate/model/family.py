"""The FLUX.2 family this gateway serves, each model's contract in one place.

Workers AI serves three FLUX.2 models behind the same multipart contract (``prompt``,
``width``/``height`` 256-1920, ``guidance``, ``seed``, ``input_image_0``...``3`` each
smaller than 512x512) and the same ``{"image": base64}`` answer. They differ in their
schedule and their price:

- FLUX.2 [dev] (``@cf/black-forest-labs/flux-2-dev``): ``steps`` settable, 1-50 (we default
  to 25); priced per tile and per step.
- FLUX.2 [klein] 4B and 9B (``@cf/black-forest-labs/flux-2-klein-4b``, ``-9b``): distilled,
  with a fixed 4-step schedule; ``steps`` cannot be set (Cloudflare's changelog entries of
  2026-01-15 and 2026-01-28: "the steps parameter is fixed at 4 and cannot be adjusted").

The request layer, the controls, the price, the cache key and ``/v1/models`` all read a
:class:`ModelSpec` from here, so adding a model is one entry. A request names a model by
its Workers AI id, its short name (``flux-2-klein-4b``) or the id without ``@cf/``
(``black-forest-labs/flux-2-klein-4b``); ``flux-2-dev`` is the default.

The offline placeholder (a local server without Cloudflare credentials) stands in for each
model under its own name, ``placeholder/<short name>``: its pictures are never cached or
reported under a real model's name. Pydantic-free.
"""

from __future__ import annotations

from dataclasses import dataclass

from .pricing import FLUX_2_DEV_PRICE, FLUX_2_KLEIN_4B_PRICE, FLUX_2_KLEIN_9B_PRICE, PriceRule

# The documented input ranges, shared by the three models.
MIN_SIZE, MAX_SIZE = 256, 1920
DEFAULT_WIDTH, DEFAULT_HEIGHT = 1024, 768
MAX_REFERENCE_IMAGES = 4
MAX_REFERENCE_SIDE = 511  # "smaller than 512x512"
MAX_STEPS = 50
PLACEHOLDER_PREFIX = "placeholder/"


@dataclass(frozen=True)
class ModelSpec:
    """One model: how requests name it, what it accepts, what it costs."""

    id: str  # the Workers AI id, as ``env.AI.run`` takes it
    short: str  # its short name (also the policy document's)
    label: str
    description: str
    price: PriceRule
    default_steps: int
    settable_steps: bool  # False: a fixed schedule; ``steps`` is refused

    @property
    def aliases(self) -> tuple[str, ...]:
        """Every name a request may use for it."""
        return (self.id, self.short, self.id.removeprefix("@cf/"))

    def capabilities(self) -> dict[str, object]:
        """What ``/v1/models`` says the model accepts."""
        return {
            "steps": {
                "settable": self.settable_steps,
                "default": self.default_steps,
                "min": 1 if self.settable_steps else self.default_steps,
                "max": MAX_STEPS if self.settable_steps else self.default_steps,
            },
            "reference_images": {"max": MAX_REFERENCE_IMAGES, "max_side": MAX_REFERENCE_SIDE},
            "sizes": {
                "min": MIN_SIZE,
                "max": MAX_SIZE,
                "default": f"{DEFAULT_WIDTH}x{DEFAULT_HEIGHT}",
            },
            "guidance": True,
            "seed": True,
        }


FLUX_2_DEV = ModelSpec(
    id="@cf/black-forest-labs/flux-2-dev",
    short="flux-2-dev",
    label="FLUX.2 [dev]",
    description="Black Forest Labs' 32B model: the highest fidelity; steps are settable.",
    price=FLUX_2_DEV_PRICE,
    default_steps=25,
    settable_steps=True,
)
FLUX_2_KLEIN_4B = ModelSpec(
    id="@cf/black-forest-labs/flux-2-klein-4b",
    short="flux-2-klein-4b",
    label="FLUX.2 [klein] 4B",
    description="Distilled 4B model with a fixed 4-step schedule: fast, cheap drafts.",
    price=FLUX_2_KLEIN_4B_PRICE,
    default_steps=4,
    settable_steps=False,
)
FLUX_2_KLEIN_9B = ModelSpec(
    id="@cf/black-forest-labs/flux-2-klein-9b",
    short="flux-2-klein-9b",
    label="FLUX.2 [klein] 9B",
    description="Distilled 9B model with a fixed 4-step schedule: better drafts than 4B.",
    price=FLUX_2_KLEIN_9B_PRICE,
    default_steps=4,
    settable_steps=False,
)

MODELS: tuple[ModelSpec, ...] = (FLUX_2_DEV, FLUX_2_KLEIN_4B, FLUX_2_KLEIN_9B)
DEFAULT_MODEL = FLUX_2_DEV
MODEL_IDS = tuple(spec.id for spec in MODELS)
_BY_NAME = {alias: spec for spec in MODELS for alias in spec.aliases}


def find_model(name: str) -> ModelSpec | None:
    """The model a request names (id, short name, or id without ``@cf/``), or ``None``.
    A placeholder's name is the served name of a deployment without credentials only
    (:meth:`Gateway.find_model`)."""
    return _BY_NAME.get(name)


def placeholder_name(spec: ModelSpec) -> str:
    """What the offline placeholder reports when it draws for ``spec``."""
    return PLACEHOLDER_PREFIX + spec.short


def is_placeholder(served: str) -> bool:
    """Whether a served name is the offline placeholder's."""
    return served.startswith(PLACEHOLDER_PREFIX) or served == "placeholder"


def spec_of(served: str) -> ModelSpec:
    """The model a stored record names. Records made before the family was served name
    flux-2-dev, or ``placeholder`` (which stood in for it)."""
    return find_model(served.removeprefix(PLACEHOLDER_PREFIX)) or DEFAULT_MODEL
