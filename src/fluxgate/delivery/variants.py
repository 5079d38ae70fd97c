"""Variants of a stored image: a fixed set of widths and formats, made once, kept beside it.

A variant is named ``<width>.<format>`` (``256.webp``). Only the widths and formats listed
here exist: arbitrary sizes would let anyone with one signed URL make the gateway encode
(and the store keep) unbounded numbers of files. The gateway signs only names it parsed
here, so a signed URL never names a variant outside the set.

A variant is made on its first download (:class:`VariantMaker`), not when its URL is
signed: asking costs nothing until a client fetches it. It is stored beside its original
under ``variants/<original sha256>/<width>.<format>`` and served from there ever after.
Pydantic-free: the Workers file route imports this without loading FastAPI.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from ..errors import ApiError
from ..imaging.formats import ImageFormatError, inspect_image
from ..imaging.image_bytes import ImageBytes
from ..model.coalesce import Coalescer, PollingCoalescer
from ..store.ports import ObjectStore
from .marking import MarkingError, Marks, variant_actions

log = logging.getLogger("fluxgate.variants")

WIDTHS = (128, 256, 512, 1024)
FORMATS = {"webp": "image/webp", "avif": "image/avif", "jpeg": "image/jpeg", "png": "image/png"}


class TransformError(Exception):
    """The transformer refused the input or failed (the service's code in the message)."""


class TransformUnavailable(TransformError):
    """The transformer failed without judging the input (the image service is down): not
    the client's fault, unlike a refusal."""


class ImageTransformer(Protocol):
    """What makes a variant: the Cloudflare Images binding on Workers, Pillow locally."""

    async def transform(self, original: ImageBytes, width: int, fmt: str) -> ImageBytes:
        """``original`` scaled down (never up) to ``width`` pixels wide, its aspect ratio
        kept, encoded as ``fmt`` (a key of :data:`FORMATS`); metadata is not carried over.
        Raises :class:`TransformError`."""
        ...


MAX_REQUESTED = len(WIDTHS) * len(FORMATS)  # every variant once; more can only be repeats
_NAME = re.compile(r"^([0-9]{1,4})\.([a-z]{3,4})$")
_ORIGINAL_KEY = re.compile(r"^images/([0-9a-f]{64})\.(?:png|jpg|webp)$")
VARIANTS_PREFIX = "variants/"


@dataclass(frozen=True)
class Variant:
    """One width and format of the fixed set, e.g. ``Variant(256, "webp")``."""

    width: int
    fmt: str

    @property
    def name(self) -> str:
        return f"{self.width}.{self.fmt}"

    @property
    def content_type(self) -> str:
        return FORMATS[self.fmt]

    @classmethod
    def parse(cls, name: str) -> Variant | None:
        """``"256.webp"`` as a variant, or ``None`` when it names none of the set."""
        match = _NAME.match(name)
        if match is None:
            return None
        width, fmt = int(match.group(1)), match.group(2)
        if width not in WIDTHS or fmt not in FORMATS or match.group(1) != str(width):
            return None
        return cls(width, fmt)


def invalid_variant(name: str, param: str) -> ApiError:
    widths = ", ".join(str(w) for w in WIDTHS)
    return ApiError(
        400,
        "invalid_variant",
        f"'{name[:40]}' is not a variant: name one as WIDTH.FORMAT with a width of {widths} "
        f"and a format of {', '.join(FORMATS)} (e.g. '256.webp').",
        param=param,
    )


def parse_variants(names: Iterable[str], param: str = "variants") -> tuple[Variant, ...]:
    """The variants a request names, in its order, repeats dropped; ``400 invalid_variant``
    for a name outside the set (the whole request is refused, never a partial answer)."""
    found: dict[Variant, None] = {}
    for index, name in enumerate(names):
        variant = Variant.parse(name)
        if variant is None:
            raise invalid_variant(name, f"{param}[{index}]")
        found[variant] = None
    return tuple(found)


def variants_query(value: str | None) -> tuple[Variant, ...]:
    """``?variants=256.webp,512.avif`` (``GET /v1/images/{id}``), as :func:`parse_variants`."""
    if not value:
        return ()
    names = [name.strip() for name in value.split(",")]
    if len(names) > MAX_REQUESTED:
        raise ApiError(
            400,
            "invalid_variant",
            f"At most {MAX_REQUESTED} variants may be asked for.",
            param="variants",
        )
    return parse_variants(names)


def unavailable() -> ApiError:
    """A deployment that cannot make variants refuses to hand out links that would fail."""
    return ApiError(
        501,
        "variants_unavailable",
        "Image variants are not available on this deployment (no Images binding on a "
        "Worker; Pillow not installed locally: pip install 'fluxgate[local]').",
        param="variants",
    )


def variant_failed() -> ApiError:
    return ApiError(502, "variant_failed", "The image service could not make this variant.")


BUSY_RETRY_SECONDS = 5


def variants_busy() -> ApiError:
    """Too many variants are being made at once here: retry shortly (nothing is remembered)."""
    return ApiError(
        503,
        "variants_busy",
        "Too many image variants are being made at the moment; retry shortly.",
        headers={"Retry-After": str(BUSY_RETRY_SECONDS)},
    )


def original_digest(original_key: str) -> str | None:
    """The SHA-256 an original's key names (``images/<sha256>.<ext>``), else ``None``."""
    match = _ORIGINAL_KEY.match(original_key)
    return match.group(1) if match else None


def variant_key(original_key: str, variant: Variant) -> str:
    """Where a variant is stored: ``variants/<original sha256>/<width>.<format>``. Derived
    from the original's content hash, so it never changes and never collides."""
    digest = original_digest(original_key)
    if digest is None:
        raise ValueError(f"not an original's key: {original_key!r}")
    return f"{VARIANTS_PREFIX}{digest}/{variant.name}"


def variant_etag(original_key: str, variant: Variant) -> str:
    """``"<sha256>-<width>.<format>"``: a strong tag, known from the path alone.

    Under one key exactly one representation is ever stored: the original is content
    addressed, and the variant is made from it once (first downloads share one making,
    :class:`VariantMaker`) and kept. A second making would not give the same bytes (its
    C2PA signature is ECDSA's, randomised), so none happens while the variant is stored.
    """
    return f'"{original_digest(original_key)}-{variant.name}"'


# Cloudflare Images encodes AVIF up to 1,200 px on either side and answers another format
# past that (developers.cloudflare.com/images/get-started/limits/ (AVIF)). Both runtimes
# keep to it, so that a variant is the same size wherever it is made.
AVIF_MAX_SIDE = 1200


def target_width(variant: Variant, width: int, height: int) -> int:
    """The width to ask the transformer for, for an original of ``width`` x ``height``:
    the variant's (never more than the original's: variants only scale down), narrowed for
    AVIF until the height fits :data:`AVIF_MAX_SIDE` (a 1024-wide AVIF of a 1024x1920
    original is 640x1200)."""
    wanted = min(variant.width, width)
    if variant.fmt == "avif" and wanted * height > AVIF_MAX_SIDE * width:
        wanted = max(1, AVIF_MAX_SIDE * width // height)
    return wanted


def is_format(head: bytes, fmt: str) -> bool:
    """Whether an image's first 16 bytes are those of ``fmt``'s container."""
    if fmt == "png":
        return head.startswith(b"\x89PNG\r\n\x1a\n")
    if fmt == "jpeg":
        return head.startswith(b"\xff\xd8\xff")
    if fmt == "webp":
        return head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    return head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis")


def _created(metadata: Mapping[str, str]) -> int | None:
    value = metadata.get("created", "")
    return int(value) if value.isdigit() and len(value) < 16 else None


class RecentFailures:
    """Variants that failed to be made lately, remembered for a while in this process (on
    Workers, this isolate): a variant that cannot be made (the service refuses its
    original, say) is answered ``502`` at once rather than re-transformed, and billed, on
    every request its signed URL makes until it expires. Bounded: the oldest entries go
    first. A retry after :data:`FAILURE_MEMORY_SECONDS` tries again."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, limit: int = 1024) -> None:
        self._clock = clock
        self._limit = limit
        self._failed: dict[str, float] = {}

    def recent(self, key: str) -> bool:
        failed = self._failed.get(key)
        if failed is None:
            return False
        if self._clock() - failed < FAILURE_MEMORY_SECONDS:
            return True
        del self._failed[key]
        return False

    def remember(self, key: str) -> None:
        self._failed.pop(key, None)
        self._failed[key] = self._clock()
        while len(self._failed) > self._limit:
            del self._failed[next(iter(self._failed))]


FAILURE_MEMORY_SECONDS = 600
# The memory of makers built without their own (the gateway's gets one: composition.py).
_FAILURES = RecentFailures()


class TransformSlots:
    """How many variants this process (on Workers, this isolate) is making at once, at most
    ``limit``: each holds its original in memory (up to a few MB) while it waits for the
    encoder, so a burst over many distinct variants is refused (``503 variants_busy``,
    ``Retry-After``) rather than queued without bound."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._taken = 0

    def take(self) -> None:
        """Raise ``503 variants_busy`` when every slot is taken."""
        if self._taken >= self.limit:
            raise variants_busy()
        self._taken += 1

    def give_back(self) -> None:
        self._taken -= 1


class VariantLog(Protocol):
    """Where a stored variant's hash is logged (the provenance index's writer)."""

    async def variant(self, generation: str, image: ImageBytes) -> None:
        """Never raises: a failure is logged and the variant is still served."""
        ...


MAX_MAKING = 8
_SLOTS = TransformSlots(MAX_MAKING)


@dataclass(frozen=True)
class VariantMaker:
    """Makes a variant the first time it is asked for and keeps it beside its original.

    One transformation per variant at a time: concurrent first downloads of one variant
    share one (``coalescer``, keyed by the variant's object key), and every one of them is
    then served the stored variant. Locally and per isolate that is a
    :class:`~fluxgate.model.coalesce.PollingCoalescer`; the Worker passes its Durable Object
    coalescer, so the first downloads share one transformation across isolates too. The
    leader looks for the variant again before making it: a request that missed it just
    before another stored it makes nothing.
    """

    objects: ObjectStore
    transformer: ImageTransformer
    marks: Marks = field(default_factory=Marks)  # XMP disclosure and C2PA credentials
    # Each variant's hash, logged for "did we make this image?"; none: not logged.
    provenance: VariantLog | None = None
    failures: RecentFailures = _FAILURES
    coalescer: Coalescer = field(default_factory=PollingCoalescer)
    slots: TransformSlots = _SLOTS

    async def ensure(self, original_key: str, variant: Variant) -> bool:
        """Whether the variant is stored now, made if missing; ``False`` when the original
        is gone (then nothing is made, or what was made while it went is dropped). Raises
        ``502 variant_failed`` when the transformer (or the marking of its output) fails,
        ``503 variants_busy`` when :data:`MAX_MAKING` other variants are being made here."""
        key = variant_key(original_key, variant)
        if await self.objects.exists(key):
            return True
        if self.failures.recent(key):
            raise variant_failed()
        try:
            made, _ = await self.coalescer.run(
                f"variant:{key}", lambda: self._make_once(original_key, variant, key)
            )
        except ApiError as exc:
            if exc.code == "variant_failed":  # every waiter remembers: no retry at once
                self.failures.remember(key)
            raise
        return bool(made)

    async def _make_once(self, original_key: str, variant: Variant, key: str) -> bool:
        """The leader's part: make and store the variant unless it is there by now."""
        if await self.objects.exists(key):
            return True
        self.slots.take()
        try:
            return await self._make_and_store(original_key, variant, key)
        finally:
            self.slots.give_back()

    async def _make_and_store(self, original_key: str, variant: Variant, key: str) -> bool:
        source = await self.objects.head(original_key)
        image = None if source is None else await self.objects.read_image(original_key)
        if source is None or image is None:
            return False
        log.info("transforming %s", key)  # one line per transformation (billed on Workers)
        made = await self._make(image, variant, source.custom_metadata)
        metadata = {"original": original_key, "variant": variant.name}
        for name in ("model", "created", "generation"):
            if name in source.custom_metadata:
                metadata[name] = source.custom_metadata[name]
        await self.objects.put(
            key, made, content_type=variant.content_type, custom_metadata=metadata
        )
        kept = await self._still_wanted(original_key, key)
        generation = metadata.get("generation")
        if kept and generation and self.provenance is not None:
            await self.provenance.variant(generation, made)
        return kept

    async def _still_wanted(self, original_key: str, key: str) -> bool:
        """Whether the variant just stored may stay: only while its original does. An image
        deleted while this variant was being made (its original read before the deletion,
        its variant written after the deletion listed ``variants/<sha256>/``) would leave a
        variant no deletion can find again. The deletion removes the original before it
        lists the variants, so one of the two sees the other: its listing this variant, or
        this HEAD the original gone (then the variant goes, and the download is a 404).
        One HEAD per variant made, none per download."""
        if await self.objects.head(original_key) is not None:
            return True
        log.info("%s: its original was deleted meanwhile; dropping it", key)
        await self.objects.delete(key)
        return False

    async def _make(
        self, image: ImageBytes, variant: Variant, metadata: Mapping[str, str]
    ) -> ImageBytes:
        try:
            info = inspect_image(image.head())
            width = target_width(variant, info.width, info.height)
            parent_fmt = info.format
            made = await self.transformer.transform(image, width, variant.fmt)
        except ImageFormatError as exc:
            log.error("variant %s: the original is unreadable: %s", variant.name, exc)
            raise variant_failed() from exc
        except TransformError as exc:
            log.error("variant %s failed: %s", variant.name, exc)
            raise variant_failed() from exc
        if not is_format(made.head(16), variant.fmt):
            # A service may answer another codec as its "best effort" (the Images binding
            # with AVIF past its side limit): never store it under the name of another.
            log.error("variant %s: the transformer answered another format", variant.name)
            raise variant_failed()
        generation = metadata.get("generation")
        statement = self.marks.statement(
            metadata.get("model"),
            _created(metadata),
            f"{generation}/{variant.name}" if generation else None,
        )
        actions = variant_actions(width, info.width, variant.fmt, parent_fmt)
        try:
            return await self.marks.variant(
                made, variant.fmt, actions, image, parent_fmt, statement
            )
        except MarkingError as exc:
            log.error("variant %s could not be marked: %s", variant.name, exc)
            raise variant_failed() from exc
