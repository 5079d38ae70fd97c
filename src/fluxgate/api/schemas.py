"""Request and response bodies of the HTTP API (the pydantic boundary)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from ..access.id_tokens import MAX_TOKEN_BYTES
from ..access.sign_in_config import ISSUED_TOKEN_TYPE, SignInConfig
from ..access.tokens import SUBJECT_MAX_LENGTH, SUBJECT_PATTERN
from ..delivery.variants import FORMATS, MAX_REQUESTED, WIDTHS
from ..errors import ApiError
from ..model.family import DEFAULT_HEIGHT, DEFAULT_WIDTH, MAX_SIZE, MAX_STEPS, MIN_SIZE
from ..policy.document import LimitOverrides
from .json_text import parse_json_text

MAX_SEED = 2**53 - 1
_SIZE = re.compile(r"^(auto|[0-9]{3,4}x[0-9]{3,4})$")


# A variant's name (checked against the set by the route: ``400 invalid_variant``).
VariantName = Annotated[
    str,
    Field(
        max_length=16,
        json_schema_extra={"enum": [f"{w}.{f}" for w in WIDTHS for f in FORMATS]},
    ),
]


def _end_user_id(description: str) -> Any:
    """An optional end-user id field (``user``, ``safety_identifier``), as tokens name one."""
    return Field(
        None,
        min_length=1,
        max_length=SUBJECT_MAX_LENGTH,
        pattern=SUBJECT_PATTERN,
        description=description,
    )


class GenerationRequest(BaseModel):
    """The body of ``POST /v1/images/generations`` (JSON, or the same names as form fields).

    ``model``, ``n``, ``size`` and ``user`` make the body the OpenAI Images API's, so its
    clients work unchanged; Fluxgate's own fields (``steps``, ``seed``, ``guidance``...)
    travel in their ``extra_body``.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False, populate_by_name=True)

    prompt: str = Field(
        min_length=1, description="What to draw. NFKC-normalised, whitespace collapsed."
    )
    model: str | None = Field(
        None,
        description="The model: flux-2-dev (default), flux-2-klein-4b or flux-2-klein-9b, by "
        "short name, Workers AI id ('@cf/black-forest-labs/flux-2-klein-4b') or the id "
        "without '@cf/'.",
        max_length=128,
    )
    n: int = Field(1, ge=1, le=1, description="Images per request: 1.")
    size: str | None = Field(
        None,
        description="'WIDTHxHEIGHT' (OpenAI style) or 'auto'.",
        json_schema_extra={"pattern": _SIZE.pattern},
    )
    width: int | None = Field(None, ge=MIN_SIZE, le=MAX_SIZE, description="Default 1024.")
    height: int | None = Field(None, ge=MIN_SIZE, le=MAX_SIZE, description="Default 768.")
    steps: int | None = Field(
        None,
        ge=1,
        le=MAX_STEPS,
        description="Diffusion steps (flux-2-dev only: default 25, cost grows linearly). "
        "The klein models have a fixed 4-step schedule and refuse it.",
    )
    guidance: float | None = Field(None, ge=0, le=30, allow_inf_nan=False)
    seed: int | None = Field(
        None,
        ge=0,
        le=MAX_SEED,
        description="Fixed seed; a random one is chosen and returned if absent.",
    )
    response_format: Literal["url", "b64_json"] = "url"
    url_ttl_seconds: int | None = Field(
        None, ge=60, description="Lifetime of the signed URL; capped by the server's maximum."
    )
    user: str | None = _end_user_id(
        "Your end user's id: cache, records and rate limits become per user."
    )
    safety_identifier: str | None = _end_user_id("OpenAI's newer name for `user`.")
    run_async: bool = Field(
        False,
        alias="async",
        description="Answer 202 with a job to poll (same as `Prefer: respond-async`).",
    )
    webhook_url: str | None = Field(
        None,
        max_length=2048,
        description="With async: POSTed the signed result when the job ends (https).",
    )
    variants: list[VariantName] | None = Field(
        None,
        max_length=MAX_REQUESTED,
        description="Variants to sign URLs for, as WIDTH.FORMAT: widths "
        f"{', '.join(str(w) for w in WIDTHS)}, formats {', '.join(FORMATS)} (e.g. "
        "['256.webp', '512.avif']; in a form, a comma-separated list). Answered in "
        "`data[0].variants`; each is made on its first download. Repeats are dropped; a "
        "name outside the set is `400 invalid_variant`.",
    )
    input_image_0: str | None = Field(None, description="Reference image: base64 or a data: URL.")
    input_image_1: str | None = None
    input_image_2: str | None = None
    input_image_3: str | None = None

    @field_validator("variants", mode="before")
    @classmethod
    def _variants_list(cls, value: Any) -> Any:
        """A form sends text: ``256.webp,512.avif`` (or a JSON array) is the list."""
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            try:  # a form field is request input: parsed as bodies are (depth first)
                return parse_json_text(text)
            except ApiError:  # not a list: named as such by the field's own check
                return value
        return [name.strip() for name in text.split(",")] if text else []

    @field_validator("size")
    @classmethod
    def _check_size(cls, size: str | None) -> str | None:
        """Format and range in one message, in the API's words (the field is named by
        pydantic's location)."""
        if size is None or size == "auto":
            return size
        sides = [int(v) for v in size.split("x")] if _SIZE.match(size) else []
        if not sides or not all(MIN_SIZE <= side <= MAX_SIZE for side in sides):
            raise PydanticCustomError(
                "size_invalid",
                "size must be 'auto' or 'WIDTHxHEIGHT' with each side {min}-{max} "
                "(e.g. '1024x768')",
                {"min": MIN_SIZE, "max": MAX_SIZE},
            )
        return size

    @model_validator(mode="after")
    def _resolve_size(self) -> GenerationRequest:
        if self.size not in (None, "auto"):
            if self.width is not None or self.height is not None:
                # A whole-model error has no location: ctx["param"] names the field.
                raise PydanticCustomError(
                    "size_conflict",
                    "size cannot be combined with width or height",
                    {"param": "size"},
                )
            self.width, self.height = (int(v) for v in self.size.split("x"))
        self.width = self.width or DEFAULT_WIDTH
        self.height = self.height or DEFAULT_HEIGHT
        return self

    @property
    def end_user(self) -> str | None:
        return self.user or self.safety_identifier


class ImageData(BaseModel):
    url: str | None = Field(None, description="Absolute signed URL of the image.")
    expires_at: int | None = Field(None, description="Unix time after which the URL is refused.")
    b64_json: str | None = None
    variants: dict[str, str] | None = Field(
        None,
        description="A signed URL per variant asked for ('256.webp': url), expiring with "
        "`expires_at`. Each is made on its first download, then kept.",
        examples=[
            {"256.webp": "https://fluxgate.example/v1/files/images/<sha256>.png/256.webp?..."}
        ],
    )


class Cost(BaseModel):
    steps: int
    output_tiles: int
    input_tiles: int
    estimated_usd: float = Field(description="What the model call costs at the published price.")
    charged_usd: float = Field(description="What this request spent: 0 on a cache hit.")


class OutputModeration(BaseModel):
    """What output moderation said about a generated image (a cache hit inherits it)."""

    verdict: Literal["safe", "flagged"]
    categories: list[str] = Field(description="Hazard categories, by name; empty when safe.")
    classifier: str = Field(
        description="The classifier's model id (placeholder/image-classifier offline)."
    )


class Generation(BaseModel):
    id: str
    object: Literal["image.generation"] = "image.generation"
    created: int
    model: str
    data: list[ImageData]
    seed: int
    width: int
    height: int
    steps: int
    guidance: float | None
    content_type: str
    bytes: int = Field(description="Size of the stored file (with its AI-disclosure XMP).")
    sha256: str = Field(
        description="SHA-256 of the stored file: the bytes served, AI-disclosure XMP "
        "included (IPTC DigitalSourceType trainedAlgorithmicMedia, unless AI_DISCLOSURE is off)."
    )
    reference_images: list[str] = Field(description="SHA-256 of each reference image.")
    cached: bool
    cost: Cost
    output_moderation: OutputModeration | None = Field(
        description="The output classifier's verdict on this image; null when it was not "
        "checked (the tier's output_moderation is off, or the classifier failed open)."
    )

    def to_json(self) -> dict[str, Any]:
        """JSON body; each ``data`` item carries only the fields of its response format."""
        body = self.model_dump(mode="json")
        body["data"] = [{k: v for k, v in item.items() if v is not None} for item in body["data"]]
        return body


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable error code.")
    message: str
    type: str
    param: str | None = None
    reason: str | None = Field(None, description="Policy reason code, for prompt_rejected.")
    category: str | None = Field(
        None,
        description="prompt_rejected (moderation) and output_rejected: the first hazard "
        "category (e.g. violent_crimes).",
    )
    categories: list[str] | None = Field(
        None, description="prompt_rejected (moderation) and output_rejected: every category."
    )
    request_id: str | None = Field(
        None, description="The request's id (also in the X-Request-Id header): quote it."
    )


class ErrorBody(BaseModel):
    error: ErrorDetail


Scope = Literal["images:generate", "images:read", "admin"]
TokenScope = Literal["images:generate", "images:read"]
DEFAULT_SCOPES: tuple[Scope, ...] = ("images:generate", "images:read")
TOKEN_SCOPES: tuple[TokenScope, ...] = ("images:generate", "images:read")


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    scopes: list[Scope] = Field(default_factory=lambda: [*DEFAULT_SCOPES], min_length=1)
    tier: str | None = Field(
        None, description="A tier of the policy document; default: its default tier."
    )
    expires_at: int | None = Field(
        None, ge=0, description="Unix time after which the key is refused."
    )
    expires_in_seconds: int | None = Field(None, ge=60, description="Alternative to expires_at.")
    overrides: LimitOverrides = Field(default_factory=LimitOverrides)
    sign_in: SignInConfig | None = Field(
        None,
        description="Whose sign-ins the key exchanges for client tokens "
        "(POST /v1/tokens/exchange), and App Check; null: none.",
    )


class KeyUpdate(BaseModel):
    """A partial update: absent fields stay; ``null`` clears tier, expiry and overrides."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _name_and_scopes_are_not_nullable(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in ("name", "scopes"):
                if name in data and data[name] is None:
                    raise PydanticCustomError(
                        "not_nullable", "{param} cannot be null", {"param": name}
                    )
        return data

    name: str | None = Field(None, min_length=1, max_length=100)
    scopes: list[Scope] | None = Field(None, min_length=1)
    tier: str | None = None
    expires_at: int | None = Field(None, ge=0)
    overrides: LimitOverrides | None = None
    sign_in: SignInConfig | None = Field(
        None, description="Sign-in token exchange and App Check for the key; null: none."
    )


class KeyRotate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grace_seconds: int = Field(
        86400, ge=0, le=30 * 86400, description="How long the old key keeps working."
    )


class KeyInfo(BaseModel):
    id: str
    name: str
    created: int
    scopes: list[str]
    tier: str | None = None
    expires_at: int | None = None
    overrides: dict[str, Any] = Field(default_factory=dict)
    sign_in: SignInConfig | None = Field(
        None, description="As set (presets written out). Key listings leave it out (null)."
    )
    revoked: bool
    revoked_at: int | None = None


class KeyCreated(KeyInfo):
    key: str = Field(description="The API key. Shown this once; only its hash is stored.")


class KeyList(BaseModel):
    data: list[KeyInfo]


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subject: str = Field(
        min_length=1,
        max_length=SUBJECT_MAX_LENGTH,
        pattern=SUBJECT_PATTERN,
        description="Your end user's id: limits, cache and records are per subject.",
    )
    ttl_seconds: int = Field(900, ge=60, description="Capped by TOKEN_MAX_TTL_SECONDS (1 h).")
    scopes: list[TokenScope] = Field(default_factory=lambda: [*TOKEN_SCOPES], min_length=1)


class TokenCreated(BaseModel):
    token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - the scheme name
    subject: str
    scopes: list[str]
    expires_at: int


class TokenExchange(BaseModel):
    """``POST /v1/tokens/exchange`` (RFC 8693's names, as JSON)."""

    model_config = ConfigDict(extra="forbid")
    key_id: str = Field(
        min_length=1,
        max_length=64,
        description="The key whose end users sign in (its id, public: not the key itself).",
    )
    subject_token: str = Field(
        min_length=1,
        max_length=MAX_TOKEN_BYTES,
        description="The ID token the sign-in gave the app.",
    )
    subject_token_type: str = Field(
        "urn:ietf:params:oauth:token-type:id_token",
        description="An ID token (`...:id_token`, or `...:jwt`).",
    )
    grant_type: str = Field(
        "urn:ietf:params:oauth:grant-type:token-exchange", description="RFC 8693's, if sent."
    )
    scope: str | None = Field(
        None,
        max_length=200,
        description="Space-separated scopes, within the key's sign-in scopes; default: all.",
    )


class TokenExchanged(TokenCreated):
    """A client token for the signed-in end user, named both ways: Fluxgate's (``token``,
    ``subject``, ``scopes``, ``expires_at``) and RFC 8693's (``access_token``...)."""

    access_token: str
    issued_token_type: str = ISSUED_TOKEN_TYPE
    expires_in: int = Field(description="Seconds the token is valid for.")
    scope: str = Field(description="The token's scopes, space-separated.")


class DayUsage(BaseModel):
    day: str = Field(description="A UTC day, YYYY-MM-DD.")
    spent_usd: float
    requests: int = Field(description="Model calls charged that day (cache hits are free).")


class UserUsage(BaseModel):
    user: str = Field(description="The end user's id (a client token's subject).")
    spent_usd: float = Field(description="Spent over the report's range.")
    requests: int = Field(description="Model calls charged over the report's range.")


class UserRateUsage(BaseModel):
    limit: int = Field(description="Model-bound requests allowed per window.")
    period: int = Field(description="The window, in seconds.")
    remaining: int = Field(description="Requests left in the current window.")
    reset: int = Field(description="Seconds until the current window ends.")


class UsageReport(BaseModel):
    """A key's usage, or one end user's: a client token always reads its own end user's
    (never the key's); an API key names an end user with ``?user=``."""

    model_config = ConfigDict(populate_by_name=True)

    key_id: str
    user: str | None = Field(
        None, description="The end user this report is about; null: the whole key."
    )
    day: str = Field(description="UTC day the budget applies to.")
    spent_usd: float
    requests: int = Field(description="Model calls charged today (cache hits are free).")
    daily_budget_usd: float | None = Field(
        description="The key's daily budget, or for an end user their own "
        "(`user_daily_budget_usd`); null: none."
    )
    remaining_usd: float | None
    resets_at: int
    first: str = Field(alias="from", description="First day of `days` (the `from` asked).")
    to: str = Field(description="Last day of `days`.")
    days: list[DayUsage] = Field(description="One row per UTC day of the range, ascending.")
    rate_limit: UserRateUsage | None = Field(
        None, description="An end user's report: their own rate limit and what is left of it."
    )
    top_users: list[UserUsage] | None = Field(
        None,
        description="A key's report: the end users who spent most over the range (at most "
        "10), most first.",
    )


class StepsCapability(BaseModel):
    settable: bool = Field(description="False: a fixed schedule; requests may not send steps.")
    default: int
    min: int
    max: int


class ReferenceCapability(BaseModel):
    max: int = Field(description="Reference images per request.")
    max_side: int = Field(description="Each reference image's largest side, in pixels.")


class SizeCapability(BaseModel):
    min: int
    max: int
    default: str


class ModelCapabilities(BaseModel):
    steps: StepsCapability
    reference_images: ReferenceCapability
    sizes: SizeCapability
    guidance: bool
    seed: bool


class ModelPricing(BaseModel):
    """Cloudflare's published price (``source``): ``basis`` says which unit prices apply."""

    model_config = ConfigDict(extra="allow")
    basis: Literal["tile_step", "tile", "megapixel"]
    source: str


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str
    name: str = Field(description="The model's display name.")
    description: str
    aliases: list[str] = Field(description="Other names a request may use for it.")
    default: bool = Field(description="What a request naming no model runs.")
    allowed: bool = Field(description="Whether the caller's tier may use it.")
    capabilities: ModelCapabilities
    pricing: ModelPricing
    stands_in_for: str | None = Field(
        None,
        description="Set when the model listed is an offline placeholder (a local server "
        "without Cloudflare credentials): the model it stands in for, which is not called.",
    )


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class JobError(BaseModel):
    status: int
    code: str
    message: str
    category: str | None = Field(None, description="output_rejected: the first category.")
    categories: list[str] | None = Field(
        None, description="output_rejected: every category the image was refused for."
    )


class JobBody(BaseModel):
    """``GET /v1/jobs/{id}`` and the 202 of an async submission."""

    id: str
    object: Literal["image.job"] = "image.job"
    status: Literal["queued", "running", "succeeded", "failed"]
    created: int
    updated: int
    status_url: str
    result: Generation | None = None
    error: JobError | None = None
    webhook: dict[str, Any] | None = None


class WebhookSecrets(BaseModel):
    secret: str = Field(description="Verify webhooks with this (Standard Webhooks `whsec_`).")
    all: list[str] = Field(description="Every secret a signature may use, during rotation.")


class ReadinessCheck(BaseModel):
    ok: bool
    ms: float | None = Field(None, description="How long the probe took.")
    error: str | None = Field(None, description="What failed: 'timeout' or an error's kind.")


class Readiness(BaseModel):
    status: Literal["ready", "unready"]
    model: str | None = Field(None, description="The model the gateway calls, when configured.")
    checks: dict[str, ReadinessCheck] = Field(
        description="config, kv, r2 and model: each dependency's probe."
    )
    content_credentials: Literal["signed", "development", "unsigned", "off"] | None = Field(
        None,
        description="How stored images are signed (C2PA): by the operator's identity, the "
        "local development chain (untrusted), not at all (no identity), or off (`C2PA=false`).",
    )
    warnings: list[str] | None = Field(
        None, description="Differences an operator must know of, each `code: explanation`."
    )


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    model: str = Field(description="The default model (what a request naming none runs).")
    models: list[str] = Field(description="Every model served, the default first.")
    version: str


class ImageItem(BaseModel):
    """One generation in ``GET /v1/images`` (and in an admin's listing of a key)."""

    id: str = Field(description="The generation's id (`GET /v1/images/{id}`).")
    object: Literal["image"] = "image"
    created: int
    model: str
    width: int
    height: int
    seed: int
    steps: int
    content_type: str
    bytes: int
    user: str | None = Field(description="The end user it was made for; null: the key itself.")
    url: str = Field(description="Absolute signed URL of the image, signed for this answer.")
    expires_at: int = Field(description="Unix time after which the URL is refused.")
    output_moderation: OutputModeration | None = Field(
        None, description="The output classifier's verdict, as the generation's; null: unchecked."
    )


class JobItem(BaseModel):
    """One async job in ``GET /v1/jobs``; `GET /v1/jobs/{id}` has the rest."""

    id: str
    object: Literal["image.job"] = "image.job"
    status: Literal["queued", "running", "succeeded", "failed"]
    created: int
    updated: int
    user: str | None = Field(description="The end user it was made for; null: the key itself.")
    status_url: str
    image_id: str | None = Field(description="The generation once succeeded (`GET /v1/images`).")
    error: JobError | None = Field(description="Why it failed, once failed.")


class ListPage(BaseModel):
    object: Literal["list"] = "list"
    has_more: bool
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last one."
    )


class ImageList(ListPage):
    """A page of generations, newest first."""

    data: list[ImageItem]


class JobList(ListPage):
    """A page of async jobs, newest first."""

    data: list[JobItem]


class VerifiedGeneration(BaseModel):
    """The generation an image is, shown to its owner (and to the admin) only."""

    id: str = Field(description="The generation's id (`GET /v1/images/{id}`).")
    created: int = Field(description="When it was generated (Unix seconds).")
    model: str = Field(description="The model that made it, as served here.")


class CredentialsFound(BaseModel):
    """The image's C2PA Content Credentials, as this deployment reads them."""

    signed_here: bool = Field(
        description="Its active manifest is signed by this deployment's signing identity, "
        "with a valid signature."
    )
    signature_valid: bool | None = Field(
        description="The claim's signature verifies with this deployment's key; null when "
        "the manifest names another certificate (not ours to check)."
    )
    binding_valid: bool | None = Field(
        description="The hard binding holds: no byte outside the manifest changed since it "
        "was signed (false: the image was altered, or the manifest was moved to another "
        "image); null for a manifest not validly signed here."
    )


class FingerprintMatch(BaseModel):
    distance: int = Field(description="Bits that differ from the stored fingerprint (of 64).")
    threshold: int = Field(description="The most differing bits that still count as a match.")


class ProvenanceVerification(BaseModel):
    """``POST /v1/provenance/verify``: whether this deployment generated an image."""

    object: Literal["provenance.verification"] = "provenance.verification"
    generated_here: bool = Field(description="Whether this deployment generated the image.")
    generated_on: str | None = Field(
        None, description="The UTC day it was generated (YYYY-MM-DD), when it was here."
    )
    matched_by: list[Literal["content_hash", "content_credentials", "fingerprint"]] = Field(
        description="Which ways recognised it: the exact file, our signed manifest, the "
        "perceptual fingerprint (survives re-encoding, resizing, stripped metadata, a crop)."
    )
    generation: VerifiedGeneration | None = Field(
        None,
        description="The generation, when the caller owns it (the admin token: any); "
        "otherwise only that, and when, it was generated here.",
    )
    content_credentials: CredentialsFound | None = Field(
        None, description="The image's C2PA manifest, when it carries one."
    )
    fingerprint: FingerprintMatch | None = Field(
        None, description="The nearest stored fingerprint, when one is within the threshold."
    )
