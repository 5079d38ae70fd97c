""" "Did this deployment generate this image?": what is logged when an image is made, and
how an image shown to us later is recognised.

Three ways, strongest first, all tried:

- **content hash**: the file's SHA-256 is that of an original or a variant we stored
  (exact; any change to the bytes, metadata included, loses it);
- **Content Credentials**: the file carries a C2PA manifest whose claim signature is ours
  and valid (it survives any copy that keeps the metadata; the hard binding says whether
  the pixels were altered since);
- **perceptual fingerprint**: a 64-bit hash of a small grayscale rendering, computed when
  the image was stored, found within :data:`~fluxgate.provenance.fingerprint.THRESHOLD`
  bits (it survives re-encoding, resizing, stripped metadata and a small crop: the
  layered marking the EU's Code of Practice asks for, where a stripped mark can still be
  answered for).

Logging never fails a generation: an index or rendering outage is logged at error and the
image is still returned (it carries its own marks; only the fingerprint is missing).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..delivery.variants import TransformError, TransformUnavailable
from ..errors import ApiError
from ..imaging.image_bytes import ImageBytes
from ..provenance.content_credentials import CredentialsCheck, CredentialsError, check
from ..provenance.fingerprint import THRESHOLD, GrayRenderer, perceptual_hash, probes
from ..provenance.index import Entry, ProvenanceIndex
from ..provenance.signer import ClaimSigner
from ..store.records import GenerationRecord

__all__ = ["ProvenanceLog", "Verification"]

log = logging.getLogger("fluxgate.provenance")

CONTENT_HASH = "content_hash"
CONTENT_CREDENTIALS = "content_credentials"
FINGERPRINT = "fingerprint"


@dataclass(frozen=True)
class Verification:
    """What was found of an image: the generation it is (``entry``, when any way found
    one), which ways matched, the manifest's check, the fingerprint's distance."""

    entry: Entry | None
    matched_by: tuple[str, ...]
    credentials: CredentialsCheck | None
    distance: int | None

    @property
    def generated_here(self) -> bool:
        return bool(self.matched_by)


@dataclass(frozen=True)
class ProvenanceLog:
    """The provenance index of a deployment, written as images are made and read to
    recognise them. ``renderer``: the small grayscale rendering (the Images binding,
    Pillow); ``None``: no fingerprints (hash and credentials still work). ``signer``:
    whose manifests count as ours."""

    index: ProvenanceIndex
    renderer: GrayRenderer | None
    signer: ClaimSigner | None

    async def generated(self, record: GenerationRecord, image: ImageBytes) -> None:
        """Log a stored original: its hash, and its fingerprint when it can be rendered (an
        image service down, or a shape no rendering fits, costs the fingerprint only)."""
        try:
            fingerprint = await self._fingerprint(image)
        except Exception as exc:
            log.error("fingerprint of %s not computed: %s", record.id, type(exc).__name__)
            fingerprint = None
        try:
            await self.index.record(
                record.id, record.owner, record.created, record.model, fingerprint, record.sha256
            )
        except Exception as exc:  # logged, never the request's failure
            log.error("provenance index write failed for %s: %s", record.id, type(exc).__name__)

    async def variant(self, generation: str, image: ImageBytes) -> None:
        """Log a stored variant's hash (its fingerprint is its original's)."""
        try:
            await self.index.record_hash(await image.sha256(), generation)
        except Exception as exc:
            log.error("provenance hash write failed for %s: %s", generation, type(exc).__name__)

    async def _fingerprint(self, image: ImageBytes) -> int | None:
        if self.renderer is None:
            return None
        return perceptual_hash(await self.renderer.gray_grid(image))

    async def _probes(self, image: ImageBytes) -> tuple[int, ...]:
        """The fingerprints an image shown to us may match (one per crop it may have had);
        none without a renderer, or for a picture too flat to have one."""
        if self.renderer is None:
            return ()
        try:
            grid = await self.renderer.gray_grid(image)
        except TransformUnavailable as exc:
            raise ApiError(
                503,
                "images_unavailable",
                "The image service did not answer; retry shortly.",
                headers={"Retry-After": "5"},
            ) from exc
        except TransformError as exc:
            raise ApiError(
                400, "invalid_image", "The image could not be decoded.", param="image"
            ) from exc
        except ValueError:  # a shape no rendering fits (1 px wide and 300 tall): no probe
            return ()
        return probes(grid)

    async def verify(self, image: ImageBytes, fmt: str | None) -> Verification:
        """Every way of recognising ``image`` (``fmt``: its container, when it is one the
        credentials can be read from)."""
        matched: list[str] = []
        entry = await self.index.by_hash(await image.sha256())
        if entry is not None:
            matched.append(CONTENT_HASH)
        credentials = await self._credentials(image, fmt)
        if credentials is not None and credentials.valid and credentials.signed_by_us:
            # Our manifest, and this image the one it was signed for: a manifest of ours
            # copied into another image, or kept on altered pixels, proves nothing of it
            # (the answer still shows it, with binding_valid false; the fingerprint says
            # whether the picture looks like ours).
            matched.append(CONTENT_CREDENTIALS)
            if entry is None and credentials.instance:
                entry = await self.index.by_generation(credentials.instance.split("/")[0])
        distance = None
        fingerprints = await self._probes(image)
        near = await self.index.nearest_any(fingerprints, THRESHOLD) if fingerprints else []
        if near:
            found, distance = near[0]
            matched.append(FINGERPRINT)
            entry = entry or found
        return Verification(entry, tuple(matched), credentials, distance)

    async def _credentials(self, image: ImageBytes, fmt: str | None) -> CredentialsCheck | None:
        if self.signer is None or fmt is None:
            return None
        try:
            return await check(image, fmt, self.signer)
        except CredentialsError:
            return None
