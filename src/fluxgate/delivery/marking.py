"""What every stored file says about how it was made: the AI-disclosure XMP, then the C2PA
Content Credentials signed over it.

Two layers, in this order: the XMP packet (:mod:`.disclosure`: readable by every metadata
tool, unsigned) is written first, so that the credentials' hard binding covers it; then
the signed manifest (:mod:`fluxgate.provenance.content_credentials`) goes in. An original's
manifest says the model created it (``c2pa.created``, IPTC ``trainedAlgorithmicMedia``);
a variant's says it was resized and/or transcoded from its original, whose own manifest it
carries as its ``parentOf`` ingredient, so that each file's credentials validate on their
own and lead back to the generation.

Why failures differ: an original whose container cannot be marked or signed is stored as
it is, and logged at error (the client has paid for it, and every retry would fail the same
way); a variant that cannot be is not stored at all (``502 variant_failed``): it is made
from a file we already hold, and a variant without the marks its original carries would be
a silent difference.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .. import __version__
from ..imaging.image_bytes import ImageBytes
from ..provenance.certificates import SigningIdentityError
from ..provenance.content_credentials import (
    CredentialsError,
    Statement,
    sign_original,
    sign_variant,
)
from ..provenance.signer import ClaimSigner
from ..provenance.timestamp import Timestamper
from .disclosure import DisclosureError, mark

__all__ = ["GENERATOR", "MarkingError", "Marks", "variant_actions"]

log = logging.getLogger("fluxgate.marking")

GENERATOR = "Fluxgate"  # the claim generator and software agent the manifests name


class MarkingError(Exception):
    """A file could not be marked or signed (its container, or the signer, failed)."""


def variant_actions(width: int, original_width: int, fmt: str, original_fmt: str) -> list[str]:
    """What making a variant did, as C2PA actions: ``c2pa.resized`` when it is narrower
    than its original, ``c2pa.transcoded`` when it is in another format, or when it is
    neither (a re-encoding at the same size is a transcoding too)."""
    actions = []
    if width < original_width:
        actions.append("c2pa.resized")
    if fmt != original_fmt or not actions:
        actions.append("c2pa.transcoded")
    return actions


@dataclass(frozen=True)
class Marks:
    """The marks of one deployment: ``disclose`` (``AI_DISCLOSURE``) writes the XMP;
    ``signer`` (``None``: ``C2PA=false``, or no signing identity on a Worker) signs."""

    disclose: bool = True
    signer: ClaimSigner | None = None
    # ``C2PA_TIMESTAMP_URL``'s authority: each signature time-stamped (an authority that
    # fails leaves that one without, logged as a warning by the core).
    timestamper: Timestamper | None = None

    def statement(
        self, model: str | None, created: int | None, generation: str | None
    ) -> Statement:
        return Statement(
            generator=GENERATOR,
            version=__version__,
            model=model or "unknown",
            created=created,
            instance=generation,
            title=None,
        )

    async def original(
        self, image: ImageBytes, fmt: str, model: str, created: int, generation: str
    ) -> ImageBytes:
        """The model's image with its marks; on a failure, what could be done (each layer
        that fails is logged at error and skipped)."""
        if self.disclose:
            try:
                image = await mark(image, fmt, model, created, generation)
            except DisclosureError as exc:
                log.error("AI-disclosure marking failed, stored unmarked: %s", exc)
        if self.signer is None:
            return image
        try:
            statement = self.statement(model, created, generation)
            return await sign_original(
                image, fmt, statement, self.signer, timestamper=self.timestamper
            )
        except (CredentialsError, SigningIdentityError) as exc:
            # An unparseable container, or an identity found wrong or expired on use.
            log.error("C2PA signing failed, stored without credentials: %s", exc)
            return image
        except Exception as exc:  # the signer's runtime failing (WebCrypto): its kind only
            log.error("C2PA signing failed, stored without credentials: %s", type(exc).__name__)
            return image

    async def variant(
        self,
        made: ImageBytes,
        fmt: str,
        actions: list[str],
        parent: ImageBytes,
        parent_fmt: str,
        statement: Statement,
    ) -> ImageBytes:
        """A freshly made variant with its marks. Raises :class:`MarkingError`."""
        try:
            if self.disclose:
                made = await mark(made, fmt, statement.model, statement.created)
            if self.signer is None:
                return made
            return await sign_variant(
                made,
                fmt,
                statement,
                parent,
                parent_fmt,
                actions,
                self.signer,
                timestamper=self.timestamper,
            )
        except (DisclosureError, CredentialsError, SigningIdentityError) as exc:
            raise MarkingError(str(exc)) from exc
        except Exception as exc:  # the signer's runtime failing: never a 500 for a variant
            raise MarkingError(type(exc).__name__) from exc
