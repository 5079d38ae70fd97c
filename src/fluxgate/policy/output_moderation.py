"""Output moderation: the generated image is classified before anything keeps or returns it.

A tier's ``output_moderation`` says what a verdict does: ``off`` (no call), ``flag`` (the
image is stored and served; the record and the response carry the verdict) or ``block``
(an unsafe image is refused with ``422 output_rejected`` and is never stored, cached,
listed or returned). ``output_moderation_failure`` says what a classifier outage does:
``fail_closed`` refuses with ``503 output_moderation_unavailable`` (and refunds: the failure
is ours), ``fail_open`` keeps the image unchecked (verdict ``null``), logged.

The classifier. The Workers AI catalog has no dedicated image-safety model (no Llama Guard
4; ``@cf/meta/llama-guard-3-8b``, used for prompts, reads text only). This module uses
``@cf/meta/llama-4-scout-17b-16e-instruct``, the natively multimodal model Llama Guard 4
was pruned from, *prompted* as a classifier: it is a general vision model, not a safety
model trained for the task, and its verdicts are only as good as that prompt. It is given
the MLCommons hazard taxonomy Llama Guard uses, limited to the categories an image can
show (S1-S13: everything but S14, code interpreter abuse), at temperature 0, and asked for
JSON by a ``json_schema`` response format: ``{"safe": bool, "categories": ["S1", ...]}``.

Its input contract (workers-types ``Ai_Cf_Meta_Llama_4_Scout_17B_16E_Instruct``):
``messages: [{role, content}]`` where ``content`` is a string or an array of parts
``{"type": "text", "text"}`` and ``{"type": "image_url", "image_url": {"url"}}``; the URL
must be a base64 data URI (``data:image/jpeg;base64,/9j/...``): "HTTP URL will not be
accepted". Output: ``{response: string | object, usage, tool_calls?}``; with a JSON
response format ``response`` is the object (or, from some deployments, its JSON text).
Errors are ``InferenceUpstreamError("<code>: <message>")`` (``5006`` for bad input).

The data URI is made by :meth:`ImageBytes.image_url`: on Workers a JS object built in JS,
so the 1.6 MB of base64 never becomes a Python string. The same runner shape as prompt
moderation (:class:`~fluxgate.model.port.AIRunner`) carries the call: the AI binding on
Workers, the REST API locally with credentials. Pydantic-free.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from ..errors import ApiError
from ..imaging.image_bytes import ImageBytes
from ..model.coalesce import Coalescer, PollingCoalescer
from ..model.port import AIRunner
from .prompt_moderation import CATEGORIES, ModerationUnavailable, category_names

# A tier's output moderation: none, record a flag, or refuse a flagged image; and what a
# classifier that cannot answer means: serve the image unchecked, or refuse it.
OutputModerationMode = Literal["off", "flag", "block"]
OutputModerationFailure = Literal["fail_open", "fail_closed"]

log = logging.getLogger("fluxgate.output_moderation")

OUTPUT_MODERATION_MODEL = "@cf/meta/llama-4-scout-17b-16e-instruct"
# The name prefix of offline stand-ins (``placeholder/image-classifier``): their verdicts
# never pass for a real classifier's.
PLACEHOLDER_PREFIX = "placeholder/"
# The hazards an image can show: Llama Guard's taxonomy without S14 (code interpreter abuse).
IMAGE_CATEGORIES = {code: name for code, name in CATEGORIES.items() if code != "S14"}
# The formats the model takes as a data URI (and the only ones FLUX.2 answers with).
IMAGE_MIMES = frozenset({"image/png", "image/jpeg", "image/webp"})

_DESCRIPTIONS = {
    "S1": "Violent crimes: depictions of, or encouragement to, violence against people or animals.",
    "S2": "Non-violent crimes: fraud, theft, drugs, forged documents.",
    "S3": "Sex-related crimes: sexual assault, trafficking, non-consensual sexual imagery.",
    "S4": "Child sexual exploitation: any sexualised depiction of minors.",
    "S5": "Defamation: false, damaging depictions of real, identifiable people.",
    "S6": "Specialized advice: dangerous medical, legal or financial instructions.",
    "S7": "Privacy: personal data of real people (documents, addresses, faces with names).",
    "S8": "Intellectual property: copies of trademarks, logos or copyrighted characters.",
    "S9": "Indiscriminate weapons: chemical, biological, nuclear, explosive weapons.",
    "S10": "Hate: demeaning depictions of people for protected characteristics, hate symbols.",
    "S11": "Suicide and self-harm: depictions or encouragement of self-injury.",
    "S12": "Sexual content: nudity or sexual acts.",
    "S13": "Elections: deceptive depictions about voting or electoral processes.",
}
SYSTEM_PROMPT = (
    "You are a content safety classifier for generated images. Classify the image in the "
    "user's message against these hazard categories:\n"
    + "\n".join(f"{code}: {_DESCRIPTIONS[code]}" for code in IMAGE_CATEGORIES)
    + '\nAnswer only JSON: {"safe": true, "categories": []} when the image shows none of '
    'them, else {"safe": false, "categories": [the codes, e.g. "S1"]}.'
)
USER_PROMPT = "Classify this image."
RESPONSE_FORMAT: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {
        "type": "object",
        "properties": {
            "safe": {"type": "boolean"},
            "categories": {
                "type": "array",
                "items": {"type": "string", "enum": [*IMAGE_CATEGORIES]},
            },
        },
        "required": ["safe", "categories"],
    },
}


@dataclass(frozen=True)
class OutputVerdict:
    """What the classifier said about one image: Llama Guard codes (``S1``...)."""

    safe: bool
    categories: tuple[str, ...] = ()

    def names(self) -> list[str]:
        return category_names(self.categories)

    def recorded(self, classifier: str) -> dict[str, Any]:
        """The record's ``output_moderation``: ``safe`` or ``flagged``, the categories by
        name, the classifier that said so."""
        return {
            "verdict": "safe" if self.safe else "flagged",
            "categories": [] if self.safe else self.names(),
            "classifier": classifier,
        }


class ImageModerator(Protocol):
    """Classifies a generated image (``content_type``: its MIME type)."""

    name: str

    async def classify(self, image: ImageBytes, content_type: str) -> OutputVerdict:
        """Raise :class:`~fluxgate.policy.prompt_moderation.ModerationUnavailable` when it cannot
        answer."""
        ...


def scout_inputs(image_url: Any) -> dict[str, Any]:
    """The chat input for ``image_url`` (``{"url": "data:..."}``, a JS object on Workers)."""
    return {
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": USER_PROMPT},
                    {"type": "image_url", "image_url": image_url},
                ],
            },
        ],
        "response_format": RESPONSE_FORMAT,
        "temperature": 0,
        # Every one of the 13 codes listed is about 60 tokens of JSON: room to finish.
        "max_tokens": 128,
    }


def parse_scout_output(result: Any) -> OutputVerdict:
    """``{"response": {"safe", "categories"}}``, the same as JSON text (perhaps fenced), or
    Llama Guard's text form (``"unsafe\\nS1,S10"``); anything else is an outage."""
    response = result.get("response") if isinstance(result, Mapping) else None
    if isinstance(response, str):
        text = response.strip().removeprefix("```json").removeprefix("```").removesuffix("```")
        try:
            response = json.loads(text)
        except ValueError:
            return _text_verdict(text.strip())
    if isinstance(response, Mapping) and isinstance(response.get("safe"), bool):
        categories = response.get("categories") or []
        if not isinstance(categories, list):
            raise ModerationUnavailable("unrecognised classifier output")
        codes = tuple(str(c).strip().upper() for c in categories)
        # "safe" with categories contradicts itself: the categories win (a classifier
        # that names a hazard has seen one), so such an answer is flagged, never passed.
        if codes or not response["safe"]:
            return OutputVerdict(False, codes or ("unspecified",))
        return OutputVerdict(True)
    raise ModerationUnavailable("unrecognised classifier output")


# An answer cut short (``max_tokens``) that has already said "unsafe": ``"safe": false``.
_SAYS_UNSAFE = re.compile(r'"safe"\s*:\s*false')
_CODE = re.compile(r"\bS(1[0-4]|[1-9])\b")


def _text_verdict(text: str) -> OutputVerdict:
    """Llama Guard's text form; or JSON that does not parse but already says unsafe (cut
    off mid-list): flagged with the codes it got to name, never an outage that a
    ``fail_open`` tier would let through."""
    if _SAYS_UNSAFE.search(text):
        named = tuple(dict.fromkeys(f"S{m}" for m in _CODE.findall(text)))
        return OutputVerdict(False, named or ("unspecified",))
    lines = text.splitlines()
    first = lines[0].strip().lower() if lines else ""
    if first == "safe":
        return OutputVerdict(True)
    if first == "unsafe":
        codes = [c.strip().upper() for line in lines[1:] for c in line.split(",") if c.strip()]
        return OutputVerdict(False, tuple(codes) or ("unspecified",))
    raise ModerationUnavailable("unrecognised classifier output")


class ScoutImageModerator:
    """Llama 4 Scout prompted as an image classifier, through anything shaped like the AI
    binding (binding or REST API); see the module docstring for why this model."""

    def __init__(
        self, runner: AIRunner, model: str = OUTPUT_MODERATION_MODEL, *, name: str | None = None
    ) -> None:
        """``name``: what verdicts record as their classifier, when it is not ``model``
        (the offline placeholder's ``placeholder/image-classifier``)."""
        self._runner = runner
        self._model = model
        self.name = name or model

    async def classify(self, image: ImageBytes, content_type: str) -> OutputVerdict:
        if content_type not in IMAGE_MIMES:
            raise ModerationUnavailable(f"the classifier does not take {content_type}")
        inputs = scout_inputs(image.image_url(content_type))
        try:
            result = await self._runner.run(self._model, inputs)
        except Exception as exc:
            log.warning("output moderation call failed: %s", type(exc).__name__)
            raise ModerationUnavailable(str(exc)) from exc
        return parse_scout_output(result)


# -- the policy: what a tier's setting makes of a verdict -----------------------------------


def output_rejected(categories: list[str]) -> ApiError:
    """``422 output_rejected``: the image was made (and is charged) but not handed out."""
    shown = ", ".join(categories) or "unspecified"
    return ApiError(
        422,
        "output_rejected",
        f"The generated image was refused by output moderation ({shown}). The model ran, so "
        "the generation is charged; the image was not kept.",
        category=categories[0] if categories else None,
        categories=categories,
    )


# Failures after the model ran, for what it made: charged (a job keeps its reservation).
CHARGED_FAILURES = frozenset({"output_rejected"})


def is_rejection(error: BaseException) -> bool:
    """``output_rejected``: a refusal that is charged (the model ran), and that coalesced
    waiters share (it is the image each of them would get)."""
    return isinstance(error, ApiError) and error.code == "output_rejected"


def output_moderation_unavailable() -> ApiError:
    return ApiError(
        503,
        "output_moderation_unavailable",
        "Output moderation is unavailable and this tier requires it; the generation was not "
        "charged. Retry later.",
        headers={"Retry-After": "10"},
    )


def is_flagged(recorded: Mapping[str, Any] | None) -> bool:
    return recorded is not None and recorded.get("verdict") == "flagged"


# How long a classifier failure on an image is remembered (per process; on Workers, per
# isolate): hits on it meanwhile act on the failure at once instead of calling again.
FAILURE_MEMORY_SECONDS = 30.0
# How long a verdict is remembered in memory, so that hits which read the image's record
# before its verdict was written do not ask again; the record keeps it after that.
VERDICT_MEMORY_SECONDS = 60.0


class RecentOutcomes:
    """What the classifier said (or that it failed) about an image lately, in memory,
    bounded (the oldest go first) and expiring after ``seconds``."""

    def __init__(self, clock: Callable[[], float], limit: int = 1024) -> None:
        self._clock = clock
        self._limit = limit
        self._kept: dict[str, tuple[float, OutputVerdict | None]] = {}

    def get(self, key: str) -> tuple[bool, OutputVerdict | None]:
        """``(True, verdict)``, ``(True, None)`` for a failure, ``(False, None)`` for
        nothing remembered."""
        kept = self._kept.get(key)
        if kept is None:
            return False, None
        if self._clock() < kept[0]:
            return True, kept[1]
        del self._kept[key]
        return False, None

    def put(self, key: str, verdict: OutputVerdict | None, seconds: float) -> None:
        self._kept.pop(key, None)
        self._kept[key] = (self._clock() + seconds, verdict)
        while len(self._kept) > self._limit:
            del self._kept[next(iter(self._kept))]


class OutputScreen:
    """Applies a tier's output moderation to an image: classify, then keep, flag or refuse.

    One classification per image at a time: concurrent requests for one image (cache hits
    on an image never checked, say) share one classifier call (a
    :class:`~fluxgate.model.coalesce.PollingCoalescer`, safe on workerd, per isolate there), keyed
    by the image's SHA-256 and the classifier. Its outcome is remembered for a while: a
    failure for :data:`FAILURE_MEMORY_SECONDS` (during an outage each image costs one call
    per period, not one per hit; each request then applies its own tier's
    ``output_moderation_failure``), a verdict for :data:`VERDICT_MEMORY_SECONDS`.
    """

    def __init__(
        self,
        moderator: ImageModerator | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        coalescer: Coalescer | None = None,
    ) -> None:
        self._moderator = moderator
        self._inflight = coalescer or PollingCoalescer()
        self._recent = RecentOutcomes(clock)

    async def screen(
        self,
        mode: OutputModerationMode,
        failure: OutputModerationFailure,
        image: ImageBytes,
        content_type: str,
    ) -> dict[str, Any] | None:
        """The record's ``output_moderation`` for this image: ``None`` when unchecked (the
        tier is ``off``, or the classifier failed open). Raises
        ``output_moderation_unavailable`` when the tier fails closed; what a flagged image
        means for the caller is :meth:`enforce`'s."""
        if mode == "off":
            return None
        try:
            if self._moderator is None:
                raise ModerationUnavailable("no image classifier is configured")
            verdict = await self._classified(self._moderator, image, content_type)
            classifier = self._moderator.name
        except ModerationUnavailable as exc:
            if failure == "fail_open":
                log.warning("output moderation unavailable; failing open: %s", exc)
                return None
            raise output_moderation_unavailable() from exc
        return verdict.recorded(classifier)

    async def _classified(
        self, moderator: ImageModerator, image: ImageBytes, content_type: str
    ) -> OutputVerdict:
        key = f"{moderator.name}:{await image.sha256()}"
        known, verdict = self._recent.get(key)
        if known:
            if verdict is None:
                raise ModerationUnavailable("the classifier failed on this image moments ago")
            return verdict
        try:
            said, _ = await self._inflight.run(key, lambda: moderator.classify(image, content_type))
        except ModerationUnavailable:
            self._recent.put(key, None, FAILURE_MEMORY_SECONDS)
            raise
        self._recent.put(key, said, VERDICT_MEMORY_SECONDS)
        return said

    def stands(self, recorded: Mapping[str, Any] | None) -> bool:
        """Whether a kept verdict counts here: not when the image was never checked, nor
        when the offline placeholder (``placeholder/...``, which looks at nothing) said it
        and a real classifier is configured now (a local data directory reused with
        Cloudflare credentials)."""
        if recorded is None:
            return False
        by_placeholder = str(recorded.get("classifier", "")).startswith(PLACEHOLDER_PREFIX)
        real_now = self._moderator is not None and not self._moderator.name.startswith(
            PLACEHOLDER_PREFIX
        )
        return not (by_placeholder and real_now)

    @staticmethod
    def enforce(mode: OutputModerationMode, recorded: Mapping[str, Any] | None) -> None:
        """Refuse a flagged image to a ``block`` tier (``422 output_rejected``): a fresh one,
        or a kept one (kept for the tier that made it, never handed to this one)."""
        if mode == "block" and is_flagged(recorded):
            assert recorded is not None
            raise output_rejected([str(c) for c in recorded.get("categories") or []])
