"""Request and response bodies of the HTTP API (the pydantic boundary)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MIN_SIZE, MAX_SIZE = 256, 1920
MAX_REFERENCE_IMAGES = 4
MAX_SEED = 2**53 - 1  # survives every JSON client and the model's string form field


class GenerationRequest(BaseModel):
    """The body of ``POST /v1/images/generations`` (JSON, or the same names as form fields)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    prompt: str = Field(
        min_length=1, description="What to draw. NFKC-normalised, whitespace collapsed."
    )
    width: int = Field(1024, ge=MIN_SIZE, le=MAX_SIZE, description="Output width in pixels.")
    height: int = Field(768, ge=MIN_SIZE, le=MAX_SIZE, description="Output height in pixels.")
    steps: int = Field(25, ge=1, le=50, description="Diffusion steps; cost grows linearly.")
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
    input_image_0: str | None = Field(None, description="Reference image: base64 or a data: URL.")
    input_image_1: str | None = None
    input_image_2: str | None = None
    input_image_3: str | None = None


class ImageData(BaseModel):
    url: str | None = Field(None, description="Absolute signed URL of the image.")
    expires_at: int | None = Field(None, description="Unix time after which the URL is refused.")
    b64_json: str | None = None


class Cost(BaseModel):
    steps: int
    output_tiles: int
    input_tiles: int
    estimated_usd: float = Field(description="What the model call costs at the published price.")
    charged_usd: float = Field(description="What this request spent: 0 on a cache hit.")


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
    bytes: int
    sha256: str
    reference_images: list[str] = Field(description="SHA-256 of each reference image.")
    cached: bool
    cost: Cost

    def to_json(self) -> dict[str, object]:
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


class ErrorBody(BaseModel):
    error: ErrorDetail


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)


class KeyInfo(BaseModel):
    id: str
    name: str
    created: int
    revoked: bool
    revoked_at: int | None = None


class KeyCreated(KeyInfo):
    key: str = Field(description="The API key. Shown this once; only its hash is stored.")


class KeyList(BaseModel):
    data: list[KeyInfo]


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    model: str
    version: str
