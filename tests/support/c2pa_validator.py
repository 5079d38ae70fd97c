"""c2pa-python (the Content Authenticity Initiative's ``c2pa-rs``), as the independent
validator of the Content Credentials we sign.

:func:`validate` reads an image's bytes with a given trust anchor (or none) and returns the
validation state and the facts the tests state: the active manifest's actions and digital
source types, its ingredients (relationship, and the manifest each points to), and the
validation status codes, of the active manifest and of its ingredients' manifests. Nothing
is fetched over the network (no remote manifests, no OCSP).
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import c2pa  # type: ignore[import-untyped]

__all__ = ["MIME_TYPES", "IngredientFacts", "Validation", "summary", "validate"]

MIME_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "avif": "image/avif"}


@dataclass(frozen=True)
class IngredientFacts:
    relationship: str
    manifest: str | None  # the label of the ingredient's active manifest, when it has one
    title: str | None
    format: str | None = None


@dataclass(frozen=True)
class Validation:
    state: str  # "Trusted", "Valid" or "Invalid"
    active_manifest: str
    manifests: frozenset[str]  # every manifest label in the store
    instance_id: str  # the active claim's instanceID
    claim_version: int
    signature_alg: str  # as c2pa-rs names it ("Es256")
    claim_generator: str  # "<name> <version>" of the claim generator
    title: str | None
    actions: tuple[str, ...]  # the active manifest's actions, in order
    digital_source_types: tuple[str, ...]  # those its actions state
    software_agents: tuple[str, ...]  # the names its actions give
    ingredients: tuple[IngredientFacts, ...]
    success: frozenset[str]  # the active manifest's status codes
    informational: frozenset[str]
    failures: frozenset[str]
    ingredient_success: frozenset[str]  # the codes of its ingredients' manifests
    ingredient_failures: frozenset[str]

    @property
    def error_codes(self) -> frozenset[str]:
        """Every failure code, the active manifest's and its ingredients'."""
        return self.failures | self.ingredient_failures


def validate(
    data: bytes, fmt: str, trust_anchor_pem: str | None, *, also_trusted: Sequence[str] = ()
) -> Validation | None:
    """What ``c2pa-rs`` makes of ``data`` (a ``fmt`` image), trusting ``trust_anchor_pem``
    (None: no anchor of ours) and the roots in ``also_trusted`` (PEM: a time-stamp
    authority's root, which c2pa-rs looks for among the same anchors as claim signers');
    None when the file has no manifest store."""
    settings: dict[str, Any] = {
        "verify": {"verify_trust": True, "ocsp_fetch": False, "remote_manifest_fetch": False},
    }
    anchors = [pem for pem in (trust_anchor_pem, *also_trusted) if pem is not None]
    if anchors:
        settings["trust"] = {"trust_anchors": "".join(_ending_in_newline(pem) for pem in anchors)}
    with c2pa.Context.from_dict(settings) as context:
        reader = c2pa.Reader.try_create(MIME_TYPES[fmt], io.BytesIO(data), None, context)
        if reader is None:
            return None
        with reader:
            store = cast(dict[str, Any], json.loads(reader.json()))
            state = str(reader.get_validation_state())
    results: dict[str, Any] = store.get("validation_results") or {}
    active_label = str(store["active_manifest"])
    active: dict[str, Any] = store["manifests"][active_label]
    actions = [
        action
        for assertion in active.get("assertions", [])
        if str(assertion.get("label", "")).startswith("c2pa.actions")
        for action in assertion["data"].get("actions", [])
    ]
    codes = results.get("activeManifest") or {}
    deltas = [delta["validationDeltas"] for delta in results.get("ingredientDeltas") or []]
    return Validation(
        state=state,
        active_manifest=active_label,
        manifests=frozenset(store["manifests"]),
        instance_id=str(active.get("instance_id")),
        claim_version=int(active.get("claim_version", 0)),
        signature_alg=str((active.get("signature_info") or {}).get("alg")),
        claim_generator=" ".join(
            f"{info.get('name')} {info.get('version')}"
            for info in active.get("claim_generator_info") or []
        ),
        title=active.get("title"),
        actions=tuple(str(action["action"]) for action in actions),
        digital_source_types=tuple(
            str(action["digitalSourceType"]) for action in actions if "digitalSourceType" in action
        ),
        software_agents=tuple(
            _agent_name(action["softwareAgent"]) for action in actions if "softwareAgent" in action
        ),
        ingredients=tuple(
            IngredientFacts(
                relationship=str(ingredient.get("relationship")),
                manifest=ingredient.get("active_manifest"),
                title=ingredient.get("title"),
                format=ingredient.get("format"),
            )
            for ingredient in active.get("ingredients", [])
        ),
        success=_codes(codes.get("success")),
        informational=_codes(codes.get("informational")),
        failures=_codes(codes.get("failure")),
        ingredient_success=frozenset().union(*(_codes(d.get("success")) for d in deltas)),
        ingredient_failures=frozenset().union(*(_codes(d.get("failure")) for d in deltas)),
    )


def _ending_in_newline(pem: str) -> str:
    return pem if pem.endswith("\n") else pem + "\n"


def _codes(statuses: list[dict[str, Any]] | None) -> frozenset[str]:
    return frozenset(str(status["code"]) for status in statuses or [])


def _agent_name(agent: dict[str, Any] | str) -> str:
    return str(agent["name"]) if isinstance(agent, dict) else agent


def summary(found: Validation) -> list[str]:
    """The validator's reading in a few lines (the README shows one), manifest ids cut to
    ``urn:c2pa:…`` so that two generations read alike."""
    ingredients = [
        f"{i.relationship}, the original's manifest {_short(i.manifest)} ({i.format})"
        for i in found.ingredients
    ]
    validated = found.success | found.ingredient_success
    if ingredients and "ingredient.manifest.validated" in validated:
        ingredients = [f"{ingredients[0]}, ingredient.manifest.validated", *ingredients[1:]]
    passed = sorted(code for code in found.success if not code.startswith("ingredient."))
    return [
        f"validation state: {found.state}",
        f"active manifest: {_short(found.active_manifest)} (claim v{found.claim_version}, "
        f"signed {found.signature_alg.upper()}, claim generator {found.claim_generator})",
        f"actions: {', '.join(found.actions)}",
        f"digital source type: {', '.join(sorted(set(found.digital_source_types)))}",
        *(f"ingredient: {line}" for line in ingredients),
        f"passed: {', '.join(passed)}",
        f"failed: {', '.join(sorted(found.error_codes)) or 'none'}",
    ]


def _short(label: str | None) -> str:
    return "none" if label is None else label.split(":", 2)[0] + ":c2pa:…"
