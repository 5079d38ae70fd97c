"""Writing a C2PA 2.x manifest: the assertions, the claim (``c2pa.claim.v2``), its COSE
signature, and the manifest store that holds it (after any parent's manifests).

What an image states:

* ``c2pa.actions.v2``: an original was ``c2pa.created`` with IPTC's digital source type
  ``trainedAlgorithmicMedia``; a variant was ``c2pa.opened`` from its original (the
  ``parentOf`` ingredient) and then ``c2pa.resized`` and/or ``c2pa.transcoded``. The
  software agent is the gateway (a ``ClaimGeneratorInfo`` map, name and version); the
  served model is named in the action's parameters and description.
* ``c2pa.ingredient.v3`` (variants): the original, with hashed URIs of its active manifest
  and claim signature and the results of our validating them, when it had credentials.
* the hard binding: ``c2pa.hash.data`` (PNG, JPEG, WebP) or ``c2pa.hash.bmff.v3`` (AVIF).

Boxes are laid out as ``c2pa-rs`` lays them (see :mod:`.jumbf`), so a validator that
re-serialises a parent manifest to check an ingredient's hash gets our bytes. The claim
holds only fields a v2 claim may hold: ``c2pa-rs`` rejects unknown ones.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from . import cbor, cose, jumbf

__all__ = [
    "ACTIONS",
    "ASSERTIONS_LABEL",
    "BMFF_HASH",
    "CLAIM",
    "DATA_HASH",
    "INGREDIENT",
    "MODEL_PARAMETER",
    "SIGNATURE_LABEL",
    "STORE_LABEL",
    "TRAINED_ALGORITHMIC_MEDIA",
    "VARIANT_ACTIONS",
    "Countersign",
    "Draft",
    "ParentManifest",
    "assertion_box",
    "assertion_url",
    "bmff_hash",
    "box_hash",
    "data_hash",
    "manifest_url",
    "original_draft",
    "signature_url",
    "store",
    "variant_draft",
]

TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
CLAIM = "c2pa.claim.v2"
ACTIONS = "c2pa.actions.v2"
INGREDIENT = "c2pa.ingredient.v3"
DATA_HASH = "c2pa.hash.data"
BMFF_HASH = "c2pa.hash.bmff.v3"
MODEL_PARAMETER = "fluxgate.model"  # the served model, in the first action's parameters
VARIANT_ACTIONS = frozenset({"c2pa.resized", "c2pa.transcoded"})
HASH_ALG = "sha256"
STORE_LABEL = "c2pa"
ASSERTIONS_LABEL = "c2pa.assertions"
SIGNATURE_LABEL = "c2pa.signature"
_HASH_NAME = "jumbf manifest"

Sign = Callable[[bytes], Awaitable[bytes]]
# The unprotected header for a finished signature (its protected header bytes, signature).
Countersign = Callable[[bytes, bytes], Awaitable[Mapping[str, cbor.Encodable]]]


def box_hash(superbox: bytes) -> bytes:
    """A hashed URI's hash: SHA-256 of a superbox's payload (after its 8-byte header)."""
    return hashlib.sha256(superbox[8:]).digest()


def manifest_url(label: str) -> str:
    return f"self#jumbf=/{STORE_LABEL}/{label}"


def signature_url(label: str) -> str:
    return f"{manifest_url(label)}/{SIGNATURE_LABEL}"


def assertion_url(assertion: str) -> str:
    """An assertion of the same manifest, as a claim refers to it."""
    return f"self#jumbf={ASSERTIONS_LABEL}/{assertion}"


def assertion_box(label: str, value: cbor.Encodable) -> bytes:
    return jumbf.superbox(jumbf.CBOR, label, jumbf.box(b"cbor", cbor.encode(value)))


def data_hash(exclusion: tuple[int, int], digest: bytes) -> dict[str, cbor.Encodable]:
    """``c2pa.hash.data``: the file's SHA-256 with the store's container excluded."""
    start, length = exclusion
    return {
        "exclusions": [{"start": start, "length": length}],
        "name": _HASH_NAME,
        "alg": HASH_ALG,
        "hash": digest,
        "pad": b"",
    }


def bmff_hash(exclusions: Sequence[cbor.Encodable], digest: bytes) -> dict[str, cbor.Encodable]:
    """``c2pa.hash.bmff.v3``: the top-level boxes' hash (see :mod:`.bmff`)."""
    return {"exclusions": list(exclusions), "alg": HASH_ALG, "hash": digest, "name": _HASH_NAME}


@dataclass(frozen=True)
class Draft:
    """A manifest but for its hard binding and signature, which depend on the file."""

    label: str  # urn:c2pa:<uuid>
    instance_id: str
    generator: Mapping[str, cbor.Encodable]  # claim_generator_info
    title: str | None
    assertions: tuple[tuple[str, bytes], ...]  # (label, superbox): all but the binding
    parents: tuple[bytes, ...] = ()  # manifest superboxes copied from the parent's store


@dataclass(frozen=True)
class ParentManifest:
    """An original's manifest as a variant's ingredient refers to it."""

    label: str
    manifest_hash: bytes  # of the manifest superbox's payload
    signature_hash: bytes  # of the claim signature superbox's payload
    instance_id: str | None
    title: str | None
    validated: tuple[str, ...]  # success codes we established, e.g. claimSignature.validated
    binding_label: str  # c2pa.hash.data or c2pa.hash.bmff.v3: the hard binding we checked
    assertion_labels: tuple[str, ...]
    manifests: tuple[bytes, ...]  # the parent's store's manifest superboxes, copied as they are


def _agent(generator: str, version: str) -> dict[str, cbor.Encodable]:
    return {"name": generator, "version": version}


def _when(created: int) -> cbor.Tag:
    """An RFC 3339 date-time, CBOR tag 0 (``DateT``)."""
    return cbor.Tag(0, datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))


def _instance_id(instance: str | None) -> str:
    return f"xmp.iid:{instance or uuid.uuid4()}"


def original_draft(
    generator: str,
    version: str,
    model: str,
    created: int | None,
    instance: str | None,
    title: str | None,
) -> Draft:
    """An original: generated by ``model`` (a trained algorithm), served by ``generator``."""
    action: dict[str, cbor.Encodable] = {
        "action": "c2pa.created",
        "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
        "softwareAgent": _agent(generator, version),
        "description": f"Generated by the model {model}",
        "parameters": {MODEL_PARAMETER: model},
    }
    if created is not None:
        action["when"] = _when(created)
    actions = assertion_box(ACTIONS, {"actions": [action]})
    return Draft(
        label=f"urn:c2pa:{uuid.uuid4()}",
        instance_id=_instance_id(instance),
        generator=_agent(generator, version),
        title=title,
        assertions=((ACTIONS, actions),),
    )


def variant_draft(
    generator: str,
    version: str,
    model: str,
    created: int | None,
    instance: str | None,
    title: str | None,
    actions: Sequence[str],
    parent: ParentManifest | None,
    parent_format: str,
) -> Draft:
    """A variant of an original (``parent``: its manifest, None when it had none)."""
    unknown = [action for action in actions if action not in VARIANT_ACTIONS]
    if unknown or not actions:
        raise ValueError(f"a variant is {sorted(VARIANT_ACTIONS)}, not {list(actions)}")
    ingredient: dict[str, cbor.Encodable] = {"relationship": "parentOf", "dc:format": parent_format}
    if parent is not None:
        if parent.title:
            ingredient["dc:title"] = parent.title
        if parent.instance_id:
            ingredient["instanceID"] = parent.instance_id
        ingredient["activeManifest"] = {
            "url": manifest_url(parent.label),
            "alg": HASH_ALG,
            "hash": parent.manifest_hash,
        }
        ingredient["claimSignature"] = {
            "url": signature_url(parent.label),
            "alg": HASH_ALG,
            "hash": parent.signature_hash,
        }
        ingredient["validationResults"] = {"activeManifest": _validation_codes(parent)}
    ingredient_box = assertion_box(INGREDIENT, ingredient)
    agent = _agent(generator, version)
    opened: dict[str, cbor.Encodable] = {
        "action": "c2pa.opened",
        "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
        "softwareAgent": agent,
        "description": f"A rendition of an image generated by the model {model}",
        "parameters": {
            "ingredients": [
                {"url": assertion_url(INGREDIENT), "hash": box_hash(ingredient_box)},
            ],
            MODEL_PARAMETER: model,
        },
    }
    if created is not None:
        opened["when"] = _when(created)
    steps: list[cbor.Encodable] = [opened]
    steps += [{"action": action, "softwareAgent": agent} for action in actions]
    actions_box = assertion_box(ACTIONS, {"actions": steps})
    return Draft(
        label=f"urn:c2pa:{uuid.uuid4()}",
        instance_id=_instance_id(instance),
        generator=agent,
        title=title,
        assertions=((INGREDIENT, ingredient_box), (ACTIONS, actions_box)),
        parents=parent.manifests if parent is not None else (),
    )


def _validation_codes(parent: ParentManifest) -> dict[str, cbor.Encodable]:
    """What we established about the parent's manifest when we took it in (a v3
    ingredient must say): its signature, each assertion's hash and its hard binding."""
    base = manifest_url(parent.label)
    success: list[cbor.Encodable] = [
        {"code": code, "url": f"{base}/{SIGNATURE_LABEL}"} for code in parent.validated
    ]
    success += [
        {"code": "assertion.hashedURI.match", "url": f"{base}/{ASSERTIONS_LABEL}/{label}"}
        for label in parent.assertion_labels
    ]
    binding_code = (
        "assertion.dataHash.match"
        if parent.binding_label == DATA_HASH
        else "assertion.bmffHash.match"
    )
    success.append(
        {"code": binding_code, "url": f"{base}/{ASSERTIONS_LABEL}/{parent.binding_label}"}
    )
    return {"success": success, "informational": [], "failure": []}


async def store(
    draft: Draft,
    binding: tuple[str, cbor.Encodable],
    chain: Sequence[bytes],
    sign: Sign | None,
    *,
    reserve: int = 0,
    countersign: Countersign | None = None,
) -> bytes:
    """The manifest store: the parent's manifests, then this one (the active manifest).

    ``sign`` None: a placeholder signature of the same length, to measure the store.
    ``reserve``: bytes set aside in the signature's unprotected header, which
    ``countersign`` fills once the claim is signed (a time-stamp); padded whatever it
    holds, so the store is as long as the placeholder measured (a
    :class:`~.cose.HeaderTooLarge` when it does not fit)."""
    boxes = [*draft.assertions, (binding[0], assertion_box(*binding))]
    claim: dict[str, cbor.Encodable] = {
        "instanceID": draft.instance_id,
        "claim_generator_info": dict(draft.generator),
        "signature": signature_url(draft.label),
        "created_assertions": [
            {"url": assertion_url(label), "hash": box_hash(data)} for label, data in boxes
        ],
    }
    if draft.title:
        claim["dc:title"] = draft.title
    claim["alg"] = HASH_ALG
    claim_bytes = cbor.encode(claim)
    protected = cose.protected_header(chain)
    unprotected: Mapping[str, cbor.Encodable] = {}
    if sign is None:
        signature = bytes(cose.ES256_SIGNATURE_LENGTH)
    else:
        signature = await sign(cose.sig_structure(protected, claim_bytes))
        if countersign is not None:
            unprotected = await countersign(protected, signature)
    signed = cose.sign1(protected, signature, unprotected, reserve=reserve)
    manifest = jumbf.superbox(
        jumbf.MANIFEST,
        draft.label,
        jumbf.superbox(jumbf.ASSERTION_STORE, ASSERTIONS_LABEL, *(data for _, data in boxes)),
        jumbf.superbox(jumbf.CLAIM, CLAIM, jumbf.box(b"cbor", claim_bytes)),
        jumbf.superbox(jumbf.SIGNATURE, SIGNATURE_LABEL, jumbf.box(b"cbor", signed)),
    )
    return jumbf.superbox(jumbf.MANIFEST_STORE, STORE_LABEL, *draft.parents, manifest)
