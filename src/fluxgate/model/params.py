"""One generation's parameters, resolved once at the HTTP boundary.

A request arrives as JSON or multipart, in Fluxgate's own field names or the OpenAI
Images API's (``size``, ``user``...). The API layer turns either into one frozen
:class:`GenerationParams` with every default applied, and from there the controls, the
cache key, the model input, the stored record and an async job's payload all read this one
value: the parameters are spelled once, not once per stage.

The one thing left open is the seed. A request without one is cached under ``seed: null``
(repeating it is a hit that returns the first image and its seed), so the seed is drawn
only on the way to the model, where it becomes part of the record.

Pydantic-free: the job consumer and the Workers adapters read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..imaging.formats import ImageInfo
from .family import DEFAULT_MODEL, ModelSpec, find_model, spec_of
from .pricing import CostEstimate, estimate


@dataclass(frozen=True)
class ReferenceImage:
    """A checked reference image: its bytes, what they are, and their SHA-256."""

    data: bytes
    info: ImageInfo
    sha256: str


@dataclass(frozen=True)
class GenerationParams:
    """What to generate, fully resolved: no field is a default still to be applied."""

    prompt: str  # as sent: the caller's prompt policy normalises it
    width: int
    height: int
    steps: int
    guidance: float | None
    seed: int | None  # None: drawn on the way to the model (see the module docstring)
    model: str  # the model that runs it, as records and cache keys name it (served name)
    references: tuple[ReferenceImage, ...] = ()

    @property
    def spec(self) -> ModelSpec:
        """The model of the family this runs (a placeholder's name resolves to the model it
        stands in for)."""
        return spec_of(self.model)

    @property
    def reference_digests(self) -> list[str]:
        return [ref.sha256 for ref in self.references]

    @property
    def reference_sizes(self) -> list[tuple[int, int]]:
        return [(ref.info.width, ref.info.height) for ref in self.references]

    def drawing(self) -> dict[str, Any]:
        """The fields that decide the picture, besides the prompt and the model: what
        a cache key and an idempotency fingerprint both hash."""
        return {
            "width": self.width,
            "height": self.height,
            "steps": self.steps,
            "guidance": self.guidance,
            "seed": self.seed,
            "references": self.reference_digests,
        }

    def cost(self) -> CostEstimate:
        """What the model call costs at the model's published price."""
        return estimate(self.width, self.height, self.steps, self.reference_sizes, self.spec.price)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form an async job stores: every field but the images' bytes, which are
        staged in the object store. The model is stored as its Workers AI id; the name it
        runs under is the backend's when the job runs (:func:`job_model`), so a job queued
        before the local server restarted with other credentials never caches a
        placeholder's image under the real model's name. :meth:`from_dict` takes both
        back."""
        return {
            "model": self.spec.id,
            "prompt": self.prompt,
            "width": self.width,
            "height": self.height,
            "steps": self.steps,
            "guidance": self.guidance,
            "seed": self.seed,
            "references": self.reference_digests,
        }

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], references: tuple[ReferenceImage, ...], model: str
    ) -> GenerationParams:
        """The inverse of :meth:`to_dict`, given the staged images read back (in order)
        and the name of the model that runs it (for :func:`job_model`)."""
        return cls(
            prompt=str(data["prompt"]),
            width=int(data["width"]),
            height=int(data["height"]),
            steps=int(data["steps"]),
            guidance=None if data.get("guidance") is None else float(data["guidance"]),
            seed=None if data.get("seed") is None else int(data["seed"]),
            model=model,
            references=references,
        )


def job_model(data: dict[str, Any]) -> ModelSpec:
    """The model a stored job runs: the one it names; flux-2-dev for a job queued before
    the family was served (its payload names none)."""
    return find_model(str(data.get("model") or "")) or DEFAULT_MODEL
