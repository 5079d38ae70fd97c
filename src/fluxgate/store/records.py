"""What KV keeps about one generation: enough to answer again without the image.

A record is stored twice per miss (``gen:<id>`` for reads by id, and the cache entry) and
travels inside a finished async job and across isolates through the coalescing Durable
Object, always as the same JSON. Its fields are the stored format: renaming one would make
every existing entry unreadable. Pydantic-free.
"""

from __future__ import annotations

import functools
import hashlib
import json
import secrets
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..model.family import spec_of
from ..model.params import GenerationParams
from ..model.pricing import CostEstimate, estimate

_ID_PREFIX = "img_"
_ID_HEX = 24


def new_generation_id() -> str:
    return _ID_PREFIX + secrets.token_hex(_ID_HEX // 2)


def is_generation_id(text: str) -> bool:
    """The shape of an id this gateway issues (checked before any store is read)."""
    return (
        text.startswith(_ID_PREFIX)
        and len(text) == len(_ID_PREFIX) + _ID_HEX
        and all(c in "0123456789abcdef" for c in text[len(_ID_PREFIX) :])
    )


@functools.lru_cache(maxsize=256, typed=True)
def _cost(
    width: int, height: int, steps: int, sizes: tuple[tuple[int, int], ...], model: str
) -> CostEstimate:
    """A record's cost, remembered: every request served asks for it (a hit's usage event
    and its answer), and a few sizes and models make nearly every record."""
    return estimate(width, height, steps, sizes, spec_of(model).price)


@dataclass
class GenerationRecord:
    id: str
    owner: str
    created: int
    model: str
    prompt_sha256: str
    width: int
    height: int
    steps: int
    guidance: float | None
    seed: int
    object_key: str
    content_type: str
    bytes: int
    sha256: str
    reference_images: list[str] = field(default_factory=list)
    reference_sizes: list[list[int]] = field(default_factory=list)
    charged: bool = True
    policy_version: int = 1
    moderated: bool = False
    cache_key: str = ""
    # The output classifier's verdict (``fluxgate.policy.output_moderation``): None when the image
    # was not checked (the tier's setting was off, or the classifier failed open), else
    # {"verdict": "safe" | "flagged", "categories": [names], "classifier": model id}.
    output_moderation: dict[str, Any] | None = None

    @classmethod
    def new(
        cls,
        params: GenerationParams,
        *,
        owner: str,
        created: int,
        prompt: str,
        seed: int,
        object_key: str,
        content_type: str,
        size: int,
        sha256: str,
        policy_version: int,
        moderated: bool,
        cache_key: str,
    ) -> GenerationRecord:
        """The record of a fresh generation of ``params`` (the prompt is stored only as
        its hash)."""
        return cls(
            id=new_generation_id(),
            owner=owner,
            created=created,
            model=params.model,
            prompt_sha256=hashlib.sha256(prompt.encode()).hexdigest(),
            width=params.width,
            height=params.height,
            steps=params.steps,
            guidance=params.guidance,
            seed=seed,
            object_key=object_key,
            content_type=content_type,
            bytes=size,
            sha256=sha256,
            reference_images=params.reference_digests,
            reference_sizes=[[w, h] for w, h in params.reference_sizes],
            policy_version=policy_version,
            moderated=moderated,
            cache_key=cache_key,
        )

    def cost(self) -> CostEstimate:
        """At the published price of the model it names (flux-2-dev for a record made
        before the family was served)."""
        sizes = tuple((w, h) for w, h in self.reference_sizes)
        return _cost(self.width, self.height, self.steps, sizes, self.model)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> GenerationRecord:
        """Fields this version knows; others (from a newer version) are ignored."""
        return cls(**{k: v for k, v in data.items() if k in _RECORD_FIELDS})  # type: ignore[arg-type]

    @classmethod
    def from_json(cls, raw: str) -> GenerationRecord:
        return cls.from_dict(json.loads(raw))


# Its field names, read once: ``dataclasses.fields`` walks every field on each call, and
# a record is read on every request.
_RECORD_FIELDS = frozenset(f.name for f in fields(GenerationRecord))
