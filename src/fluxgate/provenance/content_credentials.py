"""Content Credentials: a signed C2PA manifest in every stored image, and checking one.

An original states that it was created by a trained algorithm (the served model), through
the gateway; a variant (a resized or transcoded copy) states that it was opened from its
original, whose manifest it carries as its ``parentOf`` ingredient, and what was done to it.
Both are bound to the file's bytes (a data hash, or the BMFF hash for AVIF) and signed
with the deployment's ES256 key (:class:`~fluxgate.provenance.signer.ClaimSigner`).

Signing never copies the image into Python: the container is parsed from its head and
small reads, the store's length is settled first (placeholder hash and signature of fixed
sizes; for a data hash, the exclusion's length is iterated to its fixed point, as the
length is written in the manifest it measures), the runtime hashes the final file without
the store (``ImageBytes.splice(...).sha256()``), and the signed store is spliced in.

With a time-stamp authority (a :class:`~fluxgate.provenance.timestamp.Timestamper`), the
signature is countersigned by it once made (RFC 3161, ``sigTst2``: see
:mod:`.timestamp`), so that validators check the certificate at the time of signing and the
credentials outlive the certificate. The token's length is only known once the authority
answers, after the claim (and the exclusion's length in it) was signed, so the store is
measured with :data:`TIMESTAMP_RESERVE_BYTES` set aside in the signature's unprotected
header and padded to fill them, whatever the token's length (c2pa-rs reserves the same).
An authority that fails (unreachable, timed out, refusing, answering with something that
is not a token for this request) does not cost the image its credentials: it is signed
without a time-stamp, the reservation all padding (so every file of a deployment with a
TSA has the same layout), and a warning is logged; validators then check the certificate
at the time they validate, as for any manifest without one. A token too large for the
reservation is a :class:`CredentialsError`: a TSA whose tokens never fit is a
configuration to change, not a failure to paper over.

A variant whose original has no credentials we can vouch for (none, or not signed by this
signer, or no longer matching its bytes) is still signed: its ingredient then names the
original's format only, without a manifest (validators report its provenance unknown).

Hostile input: :func:`check` answers "not present" when a file has no store, and reports a
store it cannot read or verify as present but not valid; a file whose container cannot be
parsed at all, for any of these functions, raises :class:`CredentialsError`.
"""

from __future__ import annotations

import logging
import secrets
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..imaging.byte_ranges import Reader, image_reader
from ..imaging.image_bytes import ImageBytes
from . import bmff, cbor, containers, cose, manifest, verify
from .signer import ClaimSigner
from .timestamp import SIG_TST2, Timestamper, TimestampError, countersign, tst_container

__all__ = [
    "FORMATS",
    "MIME_TYPES",
    "TIMESTAMP_RESERVE_BYTES",
    "CredentialsCheck",
    "CredentialsError",
    "Statement",
    "check",
    "manifest_store",
    "sign_original",
    "sign_variant",
]

FORMATS = ("png", "jpeg", "webp", "avif")
MIME_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "avif": "image/avif"}
# What a signature sets aside for a time-stamp: the sigTst2 header and its padding. A token
# is a few kilobytes (the TSA's signature and certificates); c2pa-rs reserves 10,000 bytes.
TIMESTAMP_RESERVE_BYTES = 10_000
_MAX_SIZING_ROUNDS = 8  # the exclusion's length settles in two or three
_FAILURES = (ValueError, struct.error, IndexError, KeyError)

log = logging.getLogger("fluxgate.provenance")


class CredentialsError(ValueError):
    """The image cannot carry (or be read for) Content Credentials: an unknown format, a
    container that cannot be parsed or safely rewritten, or an invalid request."""


@dataclass(frozen=True)
class Statement:
    """What a manifest states about how the image was made."""

    generator: str  # the software agent: "Fluxgate"
    version: str  # its version
    model: str  # the served model
    created: int | None = None  # Unix time of the generation
    instance: str | None = None  # the generation id: the claim's instanceID is xmp.iid:<it>
    title: str | None = None


@dataclass(frozen=True)
class CredentialsCheck:
    """What an image's active manifest says, and whether it holds.

    ``signed_by_us``: the manifest names our signing certificate *and* its signature is
    valid with our key (a manifest that merely carries our certificate is not ours).
    ``signature_valid`` is checked with our key only: ``None`` (not checked) for a manifest
    that names another certificate. ``binding_valid``: every hashed assertion and the hard
    binding match the file as it is, the excluded range being exactly where the store
    sits; checked for our manifests only (``None`` otherwise): a binding someone else
    wrote is theirs to vouch for, and checking it would let anyone make us hash whatever
    exclusions they list."""

    present: bool
    signature_valid: bool | None = None
    signed_by_us: bool = False
    binding_valid: bool | None = None
    label: str | None = None  # the active manifest's label (urn:c2pa:...)
    instance: str | None = None  # the generation id (or the raw instanceID if not ours)
    created: int | None = None
    software_agent: str | None = None
    software_version: str | None = None
    model: str | None = None
    parent: str | None = None  # a variant: its ingredient's manifest label

    @property
    def valid(self) -> bool:
        """Signed by us, with a valid signature, and bound to these very bytes."""
        return self.signed_by_us and self.signature_valid is True and self.binding_valid is True


async def sign_original(
    image: ImageBytes,
    fmt: str,
    statement: Statement,
    signer: ClaimSigner,
    *,
    timestamper: Timestamper | None = None,
) -> ImageBytes:
    """``image`` with a signed manifest: created by ``statement.model``; time-stamped by
    ``timestamper`` when there is one (see the module's docstring for when it fails)."""
    _format(fmt)
    draft = manifest.original_draft(
        statement.generator,
        statement.version,
        statement.model,
        statement.created,
        statement.instance,
        statement.title,
    )
    return await _signed(image, fmt, draft, signer, timestamper)


async def sign_variant(
    image: ImageBytes,
    fmt: str,
    statement: Statement,
    parent: ImageBytes,
    parent_fmt: str,
    actions: Sequence[str],
    signer: ClaimSigner,
    *,
    timestamper: Timestamper | None = None,
) -> ImageBytes:
    """``image`` (made from ``parent`` by ``actions``: ``c2pa.resized``,
    ``c2pa.transcoded``) with a signed manifest whose ingredient is the parent's;
    time-stamped by ``timestamper`` when there is one."""
    _format(fmt)
    _format(parent_fmt)
    parent_manifest = await _parent_manifest(parent, parent_fmt, signer)
    try:
        draft = manifest.variant_draft(
            statement.generator,
            statement.version,
            statement.model,
            statement.created,
            statement.instance,
            statement.title,
            actions,
            parent_manifest,
            MIME_TYPES[parent_fmt],
        )
    except ValueError as exc:
        raise CredentialsError(str(exc)) from exc
    return await _signed(image, fmt, draft, signer, timestamper)


async def check(image: ImageBytes, fmt: str, signer: ClaimSigner) -> CredentialsCheck:
    """Whether ``image``'s active manifest is ours, validly signed and bound to it."""
    _format(fmt)
    read = image_reader(image)
    store = _extract(fmt, read, image.size)
    if store is None:
        return CredentialsCheck(present=False)
    try:
        active = verify.parse_store(store)[-1]
    except _FAILURES:
        return CredentialsCheck(present=True)
    try:
        names_us, signature_valid = await verify.signature_matches(active, signer)
    except _FAILURES:
        names_us, signature_valid = False, False
    if not names_us:
        return _facts(active)
    if not signature_valid:
        return _facts(active, signature_valid=False)
    try:
        label, value = verify.hard_binding(active)
        bound = verify.assertion_hashes_match(active) and await verify.binding_matches(
            image, read, label, value, _store_span(fmt, read, image.size)
        )
    except _FAILURES:
        bound = False
    return _facts(active, signature_valid=True, signed_by_us=True, binding_valid=bound)


def manifest_store(image: ImageBytes, fmt: str) -> bytes | None:
    """The image's C2PA manifest store (JUMBF), as embedded; None when it has none."""
    _format(fmt)
    return _extract(fmt, image_reader(image), image.size)


def _format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise CredentialsError(f"no Content Credentials for a {fmt!r} image")


def _extract(fmt: str, read: Reader, size: int) -> bytes | None:
    try:
        if fmt == "avif":
            return bmff.extract(read, size)
        return containers.extract(fmt, read, size)
    except _FAILURES as exc:
        raise CredentialsError(f"unreadable {fmt} container: {exc}") from exc


async def _signed(
    image: ImageBytes,
    fmt: str,
    draft: manifest.Draft,
    signer: ClaimSigner,
    timestamper: Timestamper | None,
) -> ImageBytes:
    chain = signer.chain
    reserve = 0 if timestamper is None else TIMESTAMP_RESERVE_BYTES
    try:
        read = image_reader(image)
        if fmt == "avif":
            place = bmff.placer(read, image.size)
        else:
            place = containers.placer(fmt, read, image.size)
        exclusion = (0, 0)
        for _ in range(_MAX_SIZING_ROUNDS):
            binding = _binding(fmt, exclusion)
            placeholder = await manifest.store(draft, binding, chain, None, reserve=reserve)
            plan = place(placeholder)
            if plan.exclusion is None or plan.exclusion == exclusion:
                break
            exclusion = plan.exclusion
        else:
            raise CredentialsError("the manifest store's length did not settle")
        digest = bytes.fromhex(await image.splice(plan.hashed).sha256())
        signed = await manifest.store(
            draft,
            _binding(fmt, exclusion, digest),
            chain,
            signer.sign,
            reserve=reserve,
            countersign=None if timestamper is None else _time_stamp(timestamper),
        )
        final = place(signed)
    except CredentialsError:
        raise
    except cose.HeaderTooLarge as exc:
        raise CredentialsError(
            f"the time-stamp token does not fit in the space reserved for it: {exc}"
        ) from exc
    except _FAILURES as exc:
        raise CredentialsError(f"cannot sign this {fmt} image: {exc}") from exc
    if len(signed) != len(placeholder) or final.exclusion != plan.exclusion:
        raise CredentialsError("the signed manifest store is not the length it was measured at")
    return image.splice(final.parts)


def _time_stamp(timestamper: Timestamper) -> manifest.Countersign:
    """The signature's unprotected header: the authority's token, or nothing (logged) when
    there is none to be had. A fresh nonce for every request, drawn when it is made."""

    async def header(protected: bytes, signature: bytes) -> Mapping[str, cbor.Encodable]:
        nonce = secrets.randbits(64) | 1
        try:
            token = await countersign(timestamper, protected, signature, nonce=nonce)
        except (TimestampError, TimeoutError) as exc:  # the message names the host at most
            log.warning("C2PA signature made without a time-stamp: %s", exc or "timed out")
            return {}
        except Exception as exc:  # a transport failing: its kind only (a URL may hold a token)
            log.warning("C2PA signature made without a time-stamp: %s", type(exc).__name__)
            return {}
        return {SIG_TST2: tst_container(token.der)}

    return header


def _binding(
    fmt: str, exclusion: tuple[int, int], digest: bytes = bytes(32)
) -> tuple[str, cbor.Encodable]:
    if fmt == "avif":
        return manifest.BMFF_HASH, manifest.bmff_hash(bmff.DEFAULT_EXCLUSIONS, digest)
    return manifest.DATA_HASH, manifest.data_hash(exclusion, digest)


def _store_span(fmt: str, read: Reader, size: int) -> tuple[int, int] | None:
    """Where a data hash's exclusion must be (AVIF's binding excludes its box by type)."""
    return None if fmt == "avif" else containers.store_span(fmt, read, size)


async def _parent_manifest(
    parent: ImageBytes, parent_fmt: str, signer: ClaimSigner
) -> manifest.ParentManifest | None:
    """The parent's active manifest if it is ours and holds for the parent's bytes (None
    for an original whose container cannot be read: its variant is still signed)."""
    read = image_reader(parent)
    try:
        store = _extract(parent_fmt, read, parent.size)
    except CredentialsError:
        return None
    if store is None:
        return None
    try:
        manifests = verify.parse_store(store)
        active = manifests[-1]
        ours, signature_valid = await verify.signature_matches(active, signer)
        label, value = verify.hard_binding(active)
        holds = (
            ours
            and signature_valid
            and verify.assertion_hashes_match(active)
            and await verify.binding_matches(
                parent, read, label, value, _store_span(parent_fmt, read, parent.size)
            )
        )
        if not holds:
            return None
        return manifest.ParentManifest(
            label=active.label,
            manifest_hash=active.manifest_hash,
            signature_hash=active.signature_hash,
            instance_id=active.instance_id,
            title=active.title,
            validated=("claimSignature.validated",),
            binding_label=label,
            assertion_labels=tuple(reference for reference, _ in active.references()),
            manifests=tuple(found.box.raw for found in manifests),
        )
    except _FAILURES:
        return None


def _facts(
    active: verify.Manifest,
    *,
    signature_valid: bool | None = None,
    signed_by_us: bool = False,
    binding_valid: bool | None = None,
) -> CredentialsCheck:
    """The check's answer, with the statement's facts as the active manifest gives them
    (None where it does not say, or says it in a way we do not read)."""
    instance = active.instance_id
    if instance is not None and instance.startswith("xmp.iid:"):
        instance = instance[len("xmp.iid:") :]
    try:
        action = active.first_action()
    except _FAILURES:
        action = {}
    agent = action.get("softwareAgent")
    name = agent.get("name") if isinstance(agent, dict) else agent
    version = agent.get("version") if isinstance(agent, dict) else None
    parameters = action.get("parameters")
    model = parameters.get(manifest.MODEL_PARAMETER) if isinstance(parameters, dict) else None
    return CredentialsCheck(
        present=True,
        label=active.label,
        instance=instance,
        created=verify.when(action),
        software_agent=_text(name),
        software_version=_text(version),
        model=_text(model),
        parent=_parent_label(active),
        signature_valid=signature_valid,
        signed_by_us=signed_by_us,
        binding_valid=binding_valid,
    )


def _parent_label(active: verify.Manifest) -> str | None:
    """The label of the manifest a variant's ingredient refers to."""
    if manifest.INGREDIENT not in active.assertions:
        return None
    try:
        ingredient = active.assertion(manifest.INGREDIENT)
    except _FAILURES:
        return None
    reference = ingredient.get("activeManifest") if isinstance(ingredient, dict) else None
    url = reference.get("url") if isinstance(reference, dict) else None
    prefix = manifest.manifest_url("")
    return url[len(prefix) :] if isinstance(url, str) and url.startswith(prefix) else None


def _text(value: cbor.Value) -> str | None:
    return value if isinstance(value, str) else None
