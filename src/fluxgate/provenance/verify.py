"""Reading a manifest store back and checking its active manifest against our signer.

What is checked is what answers "did this deployment sign this image, and is it the image
it signed?": the claim signature (with our key: a manifest signed with another
certificate is reported as not ours, its signature unverified, as checking an X.509 path
is the validator's business, not the gateway's), every hashed URI of the claim, and the
hard binding over the file as it is (``c2pa.hash.data``, or ``c2pa.hash.bmff.v2``/``v3``
with the top-level exclusions we write). Nested BMFF exclusion paths and Merkle trees,
which no image we sign has, count as a binding we cannot confirm.

Every parsing failure is a ``ValueError`` subclass; the callers turn them into answers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from ..imaging.byte_ranges import Reader, outside
from ..imaging.image_bytes import ImageBytes, SplicePart
from . import bmff, cbor, cose, jumbf
from .manifest import ASSERTIONS_LABEL, CLAIM, SIGNATURE_LABEL
from .signer import ClaimSigner

__all__ = [
    "Manifest",
    "ManifestError",
    "assertion_hashes_match",
    "binding_matches",
    "hard_binding",
    "parse_store",
    "signature_matches",
    "when",
]

_ASSERTION_PREFIXES = ("self#jumbf=c2pa.assertions/", f"self#jumbf={ASSERTIONS_LABEL}/")


class ManifestError(ValueError):
    """The manifest store is not one this reader understands."""


@dataclass(frozen=True)
class Manifest:
    label: str
    box: jumbf.SuperBox
    claim_bytes: bytes
    claim: dict[str | int, cbor.Value]
    signature: cose.Sign1
    signature_box: jumbf.SuperBox
    assertions: dict[str, jumbf.SuperBox]

    def assertion(self, label: str) -> cbor.Value:
        """An assertion's CBOR value (a :class:`ManifestError` when it has none)."""
        found = self.assertions.get(label)
        data = found.content(b"cbor") if found is not None else None
        if data is None:
            raise ManifestError(f"no CBOR assertion {label!r}")
        return cbor.decode(data)

    @property
    def instance_id(self) -> str | None:
        value = self.claim.get("instanceID")
        return value if isinstance(value, str) else None

    @property
    def title(self) -> str | None:
        value = self.claim.get("dc:title")
        return value if isinstance(value, str) else None

    @property
    def manifest_hash(self) -> bytes:
        return hashlib.sha256(self.box.payload).digest()

    @property
    def signature_hash(self) -> bytes:
        return hashlib.sha256(self.signature_box.payload).digest()

    def references(self) -> list[tuple[str, bytes]]:
        """The claim's hashed URIs: (assertion label, hash)."""
        refs: list[tuple[str, bytes]] = []
        for field in ("created_assertions", "gathered_assertions"):
            listed = self.claim.get(field, [])
            if not isinstance(listed, list):
                raise ManifestError(f"claim {field} is not a list")
            for ref in listed:
                if not isinstance(ref, dict):
                    raise ManifestError("hashed URI is not a map")
                url, digest = ref.get("url"), ref.get("hash")
                if not isinstance(url, str) or not isinstance(digest, bytes):
                    raise ManifestError("hashed URI without url or hash")
                refs.append((_assertion_label(url, self.label), digest))
        if not refs:
            raise ManifestError("claim without assertions")
        return refs

    def first_action(self) -> dict[str | int, cbor.Value]:
        """The first action of the first actions assertion (created or opened)."""
        for label in self.assertions:
            if label.startswith("c2pa.actions"):
                value = self.assertion(label)
                actions = value.get("actions") if isinstance(value, dict) else None
                if isinstance(actions, list) and actions and isinstance(actions[0], dict):
                    return actions[0]
        return {}


def _assertion_label(url: str, manifest_label: str) -> str:
    for prefix in (
        *_ASSERTION_PREFIXES,
        f"self#jumbf=/c2pa/{manifest_label}/{ASSERTIONS_LABEL}/",
    ):
        if url.startswith(prefix):
            return url[len(prefix) :]
    raise ManifestError(f"assertion URI outside this manifest: {url!r}")


def parse_store(store: bytes) -> list[Manifest]:
    """The store's manifests, in order (the last is the active one)."""
    root = jumbf.parse(store)
    if root.uuid != jumbf.MANIFEST_STORE:
        raise ManifestError("not a C2PA manifest store")
    manifests = [
        _manifest(box)
        for box in root.superboxes()
        if box.uuid in (jumbf.MANIFEST, jumbf.UPDATE_MANIFEST)
    ]
    if not manifests:
        raise ManifestError("manifest store without manifests")
    return manifests


def _manifest(box: jumbf.SuperBox) -> Manifest:
    claim_box = next((b for b in box.superboxes() if b.uuid == jumbf.CLAIM), None)
    signature_box = box.find(SIGNATURE_LABEL)
    assertion_store = box.find(ASSERTIONS_LABEL)
    if claim_box is None or signature_box is None or assertion_store is None:
        raise ManifestError("manifest without claim, signature or assertions")
    if claim_box.label != CLAIM:
        raise ManifestError(f"claim {claim_box.label!r}: only {CLAIM} is read")
    claim_bytes = claim_box.content(b"cbor")
    cose_bytes = signature_box.content(b"cbor")
    if claim_bytes is None or cose_bytes is None:
        raise ManifestError("claim or signature without CBOR")
    claim = cbor.decode(claim_bytes)
    if not isinstance(claim, dict):
        raise ManifestError("claim is not a map")
    assertions: dict[str, jumbf.SuperBox] = {}
    for assertion in assertion_store.superboxes():
        if assertion.label in assertions:
            raise ManifestError(f"assertion {assertion.label!r} twice")
        assertions[assertion.label] = assertion
    return Manifest(
        label=box.label,
        box=box,
        claim_bytes=claim_bytes,
        claim=claim,
        signature=cose.parse_sign1(cose_bytes),
        signature_box=signature_box,
        assertions=assertions,
    )


def assertion_hashes_match(manifest: Manifest) -> bool:
    """Every assertion the claim lists is there, with the hash the claim states."""
    for label, digest in manifest.references():
        found = manifest.assertions.get(label)
        if found is None or hashlib.sha256(found.payload).digest() != digest:
            return False
    return True


async def signature_matches(manifest: Manifest, signer: ClaimSigner) -> tuple[bool, bool]:
    """(signed by our leaf certificate, the signature valid under our key)."""
    ours = bool(signer.chain) and manifest.signature.chain[0] == signer.chain[0]
    if not ours or manifest.signature.alg != cose.ES256:
        return ours, False
    if len(manifest.signature.signature) != cose.ES256_SIGNATURE_LENGTH:
        return ours, False
    message = cose.sig_structure(manifest.signature.protected, manifest.claim_bytes)
    return ours, await signer.verify(message, manifest.signature.signature)


def hard_binding(manifest: Manifest) -> tuple[str, dict[str | int, cbor.Value]]:
    """The one hard-binding assertion the claim lists (label, value)."""
    listed = {label for label, _ in manifest.references()}
    found = [
        label
        for label in listed
        if label == "c2pa.hash.data" or label.startswith("c2pa.hash.bmff.v")
    ]
    if len(found) != 1:
        raise ManifestError("not exactly one hard binding")
    value = manifest.assertion(found[0])
    if not isinstance(value, dict):
        raise ManifestError("hard binding is not a map")
    return found[0], value


async def binding_matches(
    image: ImageBytes,
    read: Reader,
    label: str,
    value: dict[str | int, cbor.Value],
    store_span: tuple[int, int] | None = None,
) -> bool:
    """Whether the file as it is has the hash its hard binding states. A data hash must
    exclude exactly the store's container (``store_span``: start, length): bytes slipped
    into an excluded range beside a store made smaller would otherwise go unhashed."""
    digest, alg = value.get("hash"), value.get("alg", "sha256")
    exclusions = value.get("exclusions")
    if not isinstance(digest, bytes) or alg != "sha256" or not isinstance(exclusions, list):
        return False
    if label == "c2pa.hash.data":
        only = exclusions[0] if len(exclusions) == 1 else None
        excluded = (only.get("start"), only.get("length")) if isinstance(only, dict) else None
        if store_span is None or excluded != store_span:
            return False
        parts = _without_ranges(image.size, exclusions)
    elif label in ("c2pa.hash.bmff.v2", "c2pa.hash.bmff.v3") and "merkle" not in value:
        parts = bmff.hashed_parts(read, image.size, exclusions)
    else:
        parts = None
    if not parts:
        return False
    return await image.splice(parts).sha256() == digest.hex()


def _without_ranges(size: int, exclusions: Sequence[cbor.Value]) -> tuple[SplicePart, ...] | None:
    ranges = []
    for exclusion in exclusions:
        start = exclusion.get("start") if isinstance(exclusion, dict) else None
        length = exclusion.get("length") if isinstance(exclusion, dict) else None
        if not isinstance(start, int) or not isinstance(length, int) or start < 0 or length < 0:
            return None
        if start + length > size:
            return None
        ranges.append((start, start + length))
    return tuple(outside(0, size, ranges))


def when(action: dict[str | int, cbor.Value]) -> int | None:
    """An action's ``when`` as a Unix time, when it states one we can read."""
    value: cbor.Encodable = action.get("when")
    if isinstance(value, cbor.Tag) and value.number == 0:
        value = value.value
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return int(moment.timestamp()) if moment.tzinfo is not None else None
