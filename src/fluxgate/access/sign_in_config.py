"""A key's sign-in configuration: whose ID tokens it exchanges for client tokens, and
whether it requires Firebase App Check.

An app without a server of its own signs its users in with Firebase Auth, Sign in with
Apple, Google or any OpenID Connect provider, and exchanges the ID token it gets for a
client token (``POST /v1/tokens/exchange``). What a key accepts is set by the admin, per
key (``sign_in`` on ``POST``/``PATCH /v1/admin/keys``), validated here and stored with the
key's record in its expanded form: a preset is written out as the issuer, audiences and
JWKS URL it stands for, so what the key trusts can be read back as it is checked.

Presets (the providers' documented values):

- ``firebase``: Firebase Authentication ID tokens of project ``project_id``
  (https://firebase.google.com/docs/auth/admin/verify-id-tokens): issuer
  ``https://securetoken.google.com/<project_id>``, audience ``<project_id>``, RS256.
- ``apple``: Sign in with Apple (https://developer.apple.com/documentation/sign_in_with_apple/
  verifying-a-user): issuer ``https://appleid.apple.com``, the app's bundle id or services
  id as audiences, RS256.
- ``google``: Google Sign-In (https://developers.google.com/identity/openid-connect/openid-
  connect#validatinganidtoken): issuer ``https://accounts.google.com`` (or without the
  scheme), the OAuth client ids as audiences, RS256.

App Check tokens (https://firebase.google.com/docs/app-check/custom-resource-backend) are
JWTs too, RS256, from ``https://firebaseappcheck.googleapis.com/<project_number>`` with the
audience ``projects/<project_number>``; their subject is the app's id.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from .id_tokens import SUPPORTED_ALGORITHMS, TrustedIssuer, check_issuer_url

FIREBASE_ISSUER = "https://securetoken.google.com/"
FIREBASE_JWKS = (
    "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com"
)
APPLE_ISSUER = "https://appleid.apple.com"
APPLE_JWKS = "https://appleid.apple.com/auth/keys"
GOOGLE_ISSUER = "https://accounts.google.com"
GOOGLE_JWKS = "https://www.googleapis.com/oauth2/v3/certs"
APP_CHECK_ISSUER = "https://firebaseappcheck.googleapis.com/"
APP_CHECK_JWKS = "https://firebaseappcheck.googleapis.com/v1/jwks"

# The header an app sends its App Check token in (Firebase's own name for it).
APP_CHECK_HEADER = "x-firebase-appcheck"  # X-Firebase-AppCheck; names are matched lowercase

# RFC 8693's names: what the exchange takes and what it answers.
ID_TOKEN_TYPES = frozenset(
    {"urn:ietf:params:oauth:token-type:id_token", "urn:ietf:params:oauth:token-type:jwt"}
)
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
ISSUED_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 - a URN

MAX_ISSUERS = 10
MAX_AUDIENCES = 20
# An end user's id built from a claim: what client-token subjects allow (access/tokens.py).
USER_PREFIX_PATTERN = r"^[A-Za-z0-9._:@-]{0,32}$"
CLAIM_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"

Algorithm = Literal["RS256", "ES256"]
Text = Annotated[str, Field(min_length=1, max_length=512)]
assert set(SUPPORTED_ALGORITHMS) >= {"RS256", "ES256"}


# Claims that name no one (every user shares them) or that the client picks (nonce): never
# an end user's id.
NOT_IDENTITY_CLAIMS = frozenset(
    {
        "iss",
        "aud",
        "exp",
        "iat",
        "nbf",
        "nonce",
        "azp",
        "at_hash",
        "c_hash",
        "auth_time",
        "jti",
        "acr",
        "amr",
        "sid",
        "typ",
        "email_verified",
    }
)


def _identity_claim(name: str) -> str:
    if name in NOT_IDENTITY_CLAIMS:
        raise ValueError(f"'{name}' does not name a user; use sub (or a claim of your own)")
    return name


class IssuerConfig(BaseModel):
    """One issuer a key trusts: a preset, or its issuer, audiences and JWKS URL."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    preset: Literal["firebase", "apple", "google"] | None = Field(
        None, description="Fill issuer, JWKS URL and algorithms from a provider's values."
    )
    project_id: Text | None = Field(None, description="Firebase: the project id (the audience).")
    issuer: Text | None = Field(None, description="The exact `iss` of the tokens.")
    audiences: tuple[Text, ...] = Field(
        (),
        max_length=MAX_AUDIENCES,
        description="The token's `aud` must name one (Apple: the bundle or services id; "
        "Google: the OAuth client ids).",
    )
    jwks_url: Text | None = Field(None, description="Where the issuer publishes its keys.")
    algorithms: tuple[Algorithm, ...] = Field(
        ("RS256", "ES256"), min_length=1, description="Signature algorithms accepted."
    )
    max_age_seconds: int | None = Field(
        None, ge=60, le=30 * 86400, description="Refuse ID tokens issued longer ago than this."
    )
    user_prefix: str = Field(
        "",
        pattern=USER_PREFIX_PATTERN,
        description="Put before the claim's value to make the end-user id (`apple:`), so "
        "that two issuers' subjects cannot meet.",
    )

    @model_validator(mode="after")
    def _expanded(self) -> IssuerConfig:
        """A preset is written out; without one, issuer, audiences and JWKS URL are given."""
        values = self.model_dump()
        if self.preset == "firebase":
            if not self.project_id:
                raise ValueError("the firebase preset needs project_id")
            values.update(
                issuer=FIREBASE_ISSUER + self.project_id,
                audiences=(self.project_id,),
                jwks_url=FIREBASE_JWKS,
                algorithms=("RS256",),
            )
        elif self.preset in ("apple", "google"):
            if not self.audiences:
                raise ValueError(f"the {self.preset} preset needs audiences (your client ids)")
            apple = self.preset == "apple"
            values.update(
                issuer=APPLE_ISSUER if apple else GOOGLE_ISSUER,
                jwks_url=APPLE_JWKS if apple else GOOGLE_JWKS,
                algorithms=("RS256",),
            )
        elif self.project_id is not None:
            raise ValueError("project_id goes with the firebase preset")
        for name in ("issuer", "jwks_url"):
            if not values[name]:
                raise ValueError(f"{name} is required without a preset")
        if not values["audiences"]:
            raise ValueError("audiences is required without a preset")
        for name, given in (("issuer", self.issuer), ("jwks_url", self.jwks_url)):
            if self.preset is not None and given is not None and given != values[name]:
                raise ValueError(f"{name} is the {self.preset} preset's; leave it out")
        if values == self.model_dump():
            return self
        return IssuerConfig.model_validate(values)

    def trusted(self) -> TrustedIssuer:
        assert self.issuer is not None and self.jwks_url is not None
        return TrustedIssuer(
            issuer=self.issuer,
            audiences=self.audiences,
            jwks_url=self.jwks_url,
            algorithms=self.algorithms,
            max_age_seconds=self.max_age_seconds,
            also_issuer=("accounts.google.com",) if self.preset == "google" else (),
        )


class AppCheckConfig(BaseModel):
    """Firebase App Check: requests must come from the genuine app."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    project_number: str = Field(
        pattern=r"^[0-9]{1,20}$", description="The Firebase project's number (not its id)."
    )
    app_ids: tuple[Text, ...] = Field(
        (),
        max_length=MAX_AUDIENCES,
        description="The apps allowed (their Firebase app ids); empty: any app of the project.",
    )
    on_exchange: bool = Field(True, description="Require it on POST /v1/tokens/exchange.")
    on_requests: bool = Field(
        False, description="Require it on every request made with one of the key's client tokens."
    )
    issuer: Text | None = Field(
        None, description="Default: https://firebaseappcheck.googleapis.com/<project_number>."
    )
    jwks_url: Text = Field(APP_CHECK_JWKS, description="Default: App Check's public JWKS.")

    def trusted(self) -> TrustedIssuer:
        return TrustedIssuer(
            issuer=self.issuer or APP_CHECK_ISSUER + self.project_number,
            audiences=(f"projects/{self.project_number}",),
            jwks_url=self.jwks_url,
            algorithms=("RS256",),
        )


class SignInConfig(BaseModel):
    """What ``POST /v1/tokens/exchange`` accepts for a key, and the client tokens it answers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    issuers: tuple[IssuerConfig, ...] = Field(min_length=1, max_length=MAX_ISSUERS)
    user_claim: Annotated[str, AfterValidator(_identity_claim)] = Field(
        "sub",
        pattern=CLAIM_PATTERN,
        description="The claim that becomes the end-user id (a string matching the "
        "end-user id rules); `email` only when the token says `email_verified: true`.",
    )
    token_ttl_seconds: int = Field(
        3600, ge=60, le=86400, description="Capped by TOKEN_MAX_TTL_SECONDS."
    )
    scopes: tuple[Literal["images:generate", "images:read"], ...] = Field(
        ("images:generate", "images:read"), min_length=1
    )
    app_check: AppCheckConfig | None = None

    @model_validator(mode="after")
    def _issuers_apart(self) -> SignInConfig:
        """Each issuer once, and, with several, each with its own ``user_prefix``: two
        providers' subjects ("123" at Google, "123" at Apple) are different people, who
        must not share one end user's images, usage and quotas."""
        names = [(config.issuer or "").rstrip("/") for config in self.issuers]
        if len(set(names)) != len(names):
            raise ValueError("each issuer may appear once (put all its audiences in one entry)")
        prefixes = [config.user_prefix for config in self.issuers]
        overlapping = any(
            a.startswith(b)
            for i, a in enumerate(prefixes)
            for j, b in enumerate(prefixes)
            if i != j
        )
        if len(prefixes) > 1 and overlapping:  # "" starts every prefix; "a" starts "apple:"
            raise ValueError(
                "with several issuers, give each a user_prefix of its own that does not begin "
                "another's (e.g. 'apple:' and 'google:')"
            )
        return self

    def urls(self) -> list[str]:
        """Every issuer and JWKS URL this configuration fetches or names."""
        urls = [url for config in self.issuers for url in (config.issuer, config.jwks_url)]
        if self.app_check is not None:
            urls.append(self.app_check.jwks_url)
            if self.app_check.issuer:
                urls.append(self.app_check.issuer)
        return [url for url in urls if url]

    def check_urls(self, *, allow_loopback: bool) -> None:
        """Refuse URLs the JWKS fetcher would refuse (https only; loopback under the test
        setting only), when the configuration is saved rather than at each exchange."""
        for url in self.urls():
            check_issuer_url(url, allow_loopback=allow_loopback)

    def stored(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
