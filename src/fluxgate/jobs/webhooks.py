"""Signed webhooks, in the style of the Standard Webhooks specification.

Each delivery is a POST of a JSON body with three headers:

- ``webhook-id``: the idempotency id (the same on every retry of one event);
- ``webhook-timestamp``: Unix seconds when this attempt was signed;
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>``,
  space-separated when several secrets are valid (during a rotation).

The secret is per API key (``whsec_...``, from ``GET /v1/webhooks/secret``), derived
from the server's URL-signing keyring: no key can forge another key's webhooks. Receivers
verify with :func:`verify`: it checks the signature in constant time, refuses timestamps
more than five minutes off (against replays), and raises :class:`WebhookVerificationError`
and nothing else for any input, however malformed. Pydantic-free.

Rotation. A key's webhook secret rotates with the key: it is derived from the key's id and
the time of its last rotation (:func:`secrets_for_key`), so ``POST
/v1/admin/keys/{id}/rotate`` makes a new one, and a leaked secret dies with the key that
leaked it. Decision for the grace period: deliveries are signed with the new secret only,
from the rotation on; the old API key's grace does not extend to its webhook secret. The
secret is not a credential a client presents, so there is nothing to phase out: a receiver
fetches the new secret (``GET /v1/webhooks/secret``) with the new key when it switches.
Only the new key can: the old one, in its grace, is refused it (``403 rotated_api_key``,
:meth:`~fluxgate.access.auth.Principal.require_current_key`), since the new secret outlives the
grace and a leaked old key must not carry it past.
The Standard Webhooks header takes several signatures, and :func:`signed_headers` signs
with every secret it is given (one per URL-signing key, during a keyring rotation), so
signing with the old secret too during the grace needs only the old rotation's time and
grace end in the key record. Never-rotated keys keep the secret they always had.

Webhook URLs. A job's ``webhook_url`` must name a public host over https. The host is read
the way a resolver reads it (:func:`parse_webhook_url`): IDNA mapping (full-width letters,
the ideographic full stops, ignorable characters), every numeric IPv4 spelling ``inet_aton``
accepts (``127.1``, ``0x7f.1``, ``2130706433``, ``0177.0.0.1``), trailing dots, bracketed
IPv6 in any form. Loopback, private, link-local, CGNAT, unspecified, multicast, reserved and
cloud-metadata addresses are refused in any spelling, as are single-label names and the
``localhost``/``.local``/``.internal`` families. The URL the job stores, and later POSTs
to, is the canonical one rebuilt from that parse, so no other URL parser can read a
different host into it. ``WEBHOOK_ALLOW_LOOPBACK`` (local testing) admits loopback only.
The local runtime checks the resolved address again when it connects; neither runtime
follows redirects (a 3xx is a failed delivery). A failed delivery is reported with a fixed
vocabulary (:data:`DELIVERY_ERRORS`, or ``http_<status>``), never with network detail: the
job's ``webhook.error`` must not turn the gateway into a port scanner.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

from ..access.auth import KeyStore
from ..delivery.signing import UrlSigner
from ..errors import ApiError
from ..imaging.b64 import urlsafe_decode
from .table import ACK, FAILED, SUCCEEDED, Disposition, Job, JobQueue, JobStore, backoff

log = logging.getLogger("fluxgate.webhooks")

SECRET_PREFIX = "whsec_"  # noqa: S105 - the public prefix of the format
TOLERANCE_SECONDS = 300
_PURPOSE = "webhook-secret-v1"


class WebhookVerificationError(ValueError):
    """The only exception :func:`verify` raises: the delivery is not authentic."""


# -- secrets and signatures ------------------------------------------------------------------


def secrets_for_key(signer: UrlSigner, key_id: str, rotated_at: int | None = None) -> list[str]:
    """Every valid webhook secret of a key, one per URL-signing key (the current first).

    ``rotated_at``: the key's last rotation; a rotation makes a new secret. ``None`` (never
    rotated) gives the secret the key had from its creation.
    """
    message = key_id if rotated_at is None else f"{key_id}@{int(rotated_at)}"
    out = []
    for mac in signer.keyed_macs(_PURPOSE, message):
        raw = urlsafe_decode(mac)
        out.append(SECRET_PREFIX + base64.b64encode(raw).decode())
    return out


def _secret_bytes(secret: str) -> bytes:
    if not isinstance(secret, str):
        raise WebhookVerificationError("malformed webhook secret")
    try:
        raw = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WebhookVerificationError("malformed webhook secret") from exc
    if not raw:
        raise WebhookVerificationError("malformed webhook secret")
    return raw


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(
    secrets: list[str], message_id: str, body: bytes, now: float | None = None
) -> dict[str, str]:
    timestamp = int(time.time() if now is None else now)
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(s, message_id, timestamp, body) for s in secrets),
        "user-agent": "fluxgate-webhooks/1",
    }


# ASCII digits only: str.isdigit() also takes "²" (which int() refuses), int() takes other
# scripts' digits, and an unbounded run of digits can exceed int()'s string limit.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_MAX_HEADER = 8192


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: int = TOLERANCE_SECONDS,
    now: float | None = None,
) -> dict[str, Any]:
    """Check a delivery and return its parsed JSON payload.

    Raises :class:`WebhookVerificationError`, and only that, on any mismatch or malformed
    input (secret, headers, body), so a receiver that catches it answers 400, never 500.
    ``headers`` may be any case-insensitive mapping or a plain dict with lower-case names.
    """
    try:
        return _verify(secret, headers, body, tolerance, time.time() if now is None else now)
    except WebhookVerificationError:
        raise
    except Exception as exc:  # any other shape of bad input is still an unverifiable delivery
        raise WebhookVerificationError("malformed webhook") from exc


def _header(headers: Mapping[str, str], name: str) -> str:
    found = [v for k, v in headers.items() if isinstance(k, str) and k.lower() == name]
    if len(found) != 1 or not isinstance(found[0], str) or not found[0]:
        raise WebhookVerificationError(f"missing or malformed {name} header")
    if len(found[0]) > _MAX_HEADER or not found[0].isascii():
        raise WebhookVerificationError(f"malformed {name} header")
    return found[0]


def _verify(
    secret: str, headers: Mapping[str, str], body: bytes, tolerance: int, now: float
) -> dict[str, Any]:
    if not isinstance(body, bytes | bytearray | memoryview):
        raise WebhookVerificationError("the webhook body must be bytes")
    body = bytes(body)
    message_id = _header(headers, "webhook-id")
    timestamp = _header(headers, "webhook-timestamp")
    signatures = _header(headers, "webhook-signature")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise WebhookVerificationError("malformed webhook timestamp")
    if abs(now - int(timestamp)) > tolerance:
        raise WebhookVerificationError("webhook timestamp outside the tolerance")
    expected = sign(secret, message_id, int(timestamp), body).encode()
    if not any(hmac.compare_digest(c.encode(), expected) for c in signatures.split()):
        raise WebhookVerificationError("no matching webhook signature")
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise WebhookVerificationError("the webhook body is not JSON") from exc
    if not isinstance(payload, dict):
        raise WebhookVerificationError("the webhook body is not a JSON object")
    return payload


# -- webhook URLs ----------------------------------------------------------------------------

MAX_URL_LENGTH = 2048
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Characters no URL parser agrees on, or that some parsers silently drop or rewrite.
_UNSAFE = re.compile(r"[\x00-\x20\x7f\\]")
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"
# IPv4 parts as inet_aton spells them (int() alone would also take "+7", "1_0" or "٣").
_HEX = re.compile(r"0[xX][0-9a-fA-F]*")
_OCTAL = re.compile(r"0[0-7]+")
_DECIMAL = re.compile(r"[1-9][0-9]*|0")

# Top-level names that resolve inside a network (or to the machine itself), whatever public
# DNS says: "localhost", mDNS, cloud-internal ("metadata.google.internal"), home networks
# ("home.arpa"), reverse-lookup names.
_LOCAL_NAMES = frozenset(
    {"localhost", "local", "internal", "intranet", "lan", "home", "corp", "private", "arpa"}
)

_BLOCKED_V4 = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",  # "this network", unspecified
        "10.0.0.0/8",
        "100.64.0.0/10",  # CGNAT (and Alibaba's metadata at 100.100.100.200)
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, cloud metadata 169.254.169.254
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF assignments (Oracle metadata 192.0.0.192)
        "192.0.2.0/24",
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, broadcast
        "168.63.129.16/32",  # Azure's wire server (metadata at a public-looking address)
    )
)
_GLOBAL_V6 = ipaddress.IPv6Network("2000::/3")
_BLOCKED_V6 = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "2001::/23",  # IETF protocol assignments, Teredo (embeds any IPv4)
        "2001:db8::/32",  # documentation
        "2002::/16",  # 6to4 (embeds any IPv4)
        "3fff::/20",  # documentation
    )
)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def address_refusal(address: Address, *, allow_loopback: bool = False) -> str | None:
    """Why a webhook must not reach ``address`` (``None``: it may).

    IPv6 must be global unicast (2000::/3), so ``::1``, ``::``, ``::ffff:127.0.0.1``,
    NAT64, ULA (``fd00:ec2::254``), link-local and multicast are all refused; IPv4 must be
    outside every special-purpose block.
    """
    if address.is_loopback:
        return None if allow_loopback else "a loopback address"
    if isinstance(address, ipaddress.IPv6Address):
        if address not in _GLOBAL_V6 or any(address in n for n in _BLOCKED_V6):
            return "a private, link-local or special-purpose address"
        return None
    if any(address in n for n in _BLOCKED_V4):
        return "a private, link-local or special-purpose address"
    return None


class InvalidWebhookUrl(ValueError):
    """A webhook URL that is malformed or names a host it must not reach."""


@dataclass(frozen=True)
class WebhookTarget:
    """A webhook URL as a resolver reads it; :attr:`url` is its canonical spelling."""

    scheme: str
    host: str  # ASCII: an A-label name, a dotted-quad IPv4, or an IPv6 without brackets
    port: int
    target: str  # path and query, percent-encoded
    address: Address | None  # when the host is an IP address literal

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if isinstance(self.address, ipaddress.IPv6Address) else self.host
        return host if _DEFAULT_PORTS[self.scheme] == self.port else f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.authority}{self.target}"

    @property
    def loopback(self) -> bool:
        return self.host == "localhost" if self.address is None else self.address.is_loopback


def _ipv4_number(label: str) -> int | None:
    """One part of an IPv4 address as ``inet_aton`` (and the WHATWG URL parser) reads it:
    ``0x`` hex, leading-zero octal, or decimal. ``None`` when it is not a number."""
    if len(label) > 63:
        return None
    if _HEX.fullmatch(label):
        return int(label[2:], 16) if len(label) > 2 else 0
    if _OCTAL.fullmatch(label):
        return int(label, 8)
    return int(label) if _DECIMAL.fullmatch(label) else None


def _parse_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address a host spells, ``None`` for a name; raise when it ends in a number
    but is no valid address (a resolver would not look such a host up as a name either)."""
    labels = host.split(".")
    last = labels[-1]
    if not (last.isascii() and last.isdigit()) and _ipv4_number(last) is None:
        return None
    numbers = [_ipv4_number(label) for label in labels]
    if len(labels) > 4 or any(n is None for n in numbers):
        raise InvalidWebhookUrl("has a malformed IPv4 address")
    parts = [n for n in numbers if n is not None]
    *head, tail = parts
    if any(n > 255 for n in head) or tail >= 256 ** (5 - len(parts)):
        raise InvalidWebhookUrl("has a malformed IPv4 address")
    value = tail
    for index, n in enumerate(head):
        value += n << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def _map_name(host: str) -> str:
    """IDNA mapping (NFKC, case folding, ignorable characters removed, the ideographic and
    full-width full stops read as dots), then A-labels: ASCII, as a resolver receives it."""
    if host.isascii():
        return host.lower()
    try:
        return host.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise InvalidWebhookUrl("has a malformed host name") from exc


def _parse_host(raw: str) -> tuple[str, Address | None]:
    if raw.startswith("["):
        if not raw.endswith("]") or "%" in raw:  # no zone ids
            raise InvalidWebhookUrl("has a malformed IPv6 address")
        try:
            v6 = ipaddress.IPv6Address(raw[1:-1])
        except ValueError as exc:
            raise InvalidWebhookUrl("has a malformed IPv6 address") from exc
        return v6.compressed, v6
    if not raw or "%" in raw:
        raise InvalidWebhookUrl("must name a host (not percent-encoded)")
    name = _map_name(raw)
    if name.endswith("."):  # the root: "localhost." is localhost
        name = name[:-1]
    if not name or len(name) > 253:
        raise InvalidWebhookUrl("has a malformed host name")
    v4 = _parse_ipv4(name)
    if v4 is not None:
        return str(v4), v4
    labels = name.split(".")
    if not all(_LABEL.fullmatch(label) for label in labels):
        raise InvalidWebhookUrl("has a malformed host name")
    return name, None


def _split_authority(netloc: str) -> tuple[str, str]:
    if "@" in netloc:
        raise InvalidWebhookUrl("must not carry credentials")
    if netloc.startswith("["):
        end = netloc.find("]")
        host, rest = (netloc[: end + 1], netloc[end + 1 :]) if end != -1 else (netloc, "")
        if rest and not rest.startswith(":"):
            raise InvalidWebhookUrl("has a malformed authority")
        return host, rest[1:]
    host, _, port = netloc.partition(":")
    if ":" in port:
        raise InvalidWebhookUrl("has a malformed authority")
    return host, port


def parse_webhook_url(url: str) -> WebhookTarget:
    """Parse ``url`` the way a resolver and an HTTP client would, or raise
    :class:`InvalidWebhookUrl`; says nothing yet about whether the host is allowed."""
    if not isinstance(url, str) or len(url) > MAX_URL_LENGTH:
        raise InvalidWebhookUrl("is too long")
    if _UNSAFE.search(url):
        raise InvalidWebhookUrl("must not contain spaces, control characters or backslashes")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise InvalidWebhookUrl("is not a valid URL") from exc
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise InvalidWebhookUrl("must use https")
    raw_host, raw_port = _split_authority(parts.netloc)
    if raw_port and not (raw_port.isascii() and raw_port.isdigit() and len(raw_port) <= 5):
        raise InvalidWebhookUrl("has a malformed port")
    port = int(raw_port) if raw_port else _DEFAULT_PORTS[scheme]
    if not 0 < port < 65536:
        raise InvalidWebhookUrl("has a malformed port")
    host, address = _parse_host(raw_host)
    target = quote(parts.path or "/", safe=_PATH_SAFE)
    if not target.startswith("/"):
        raise InvalidWebhookUrl("is not a valid URL")
    if parts.query:
        target += "?" + quote(parts.query, safe=_PATH_SAFE + "?")
    return WebhookTarget(scheme, host, port, target, address)


def host_refusal(target: WebhookTarget, *, allow_loopback: bool = False) -> str | None:
    """Why a webhook must not go to ``target``'s host (``None``: it may)."""
    if target.address is not None:
        return address_refusal(target.address, allow_loopback=allow_loopback)
    labels = target.host.split(".")
    if target.host == "localhost":
        return None if allow_loopback else "a loopback host"
    if len(labels) < 2:  # resolvers expand single labels with search domains ("metadata")
        return "a single-label host name"
    if labels[-1] in _LOCAL_NAMES:
        return "a local or internal host name"
    return None


def check_url(url: str, *, allow_loopback: bool = False) -> str:
    """The canonical URL of a webhook to a public host over https (and, if allowed, over
    http or https to loopback); a 400 ``invalid_webhook_url`` otherwise."""

    def refuse(why: str) -> ApiError:
        return ApiError(400, "invalid_webhook_url", f"webhook_url {why}.", param="webhook_url")

    try:
        target = parse_webhook_url(url)
    except InvalidWebhookUrl as exc:
        raise refuse(str(exc)) from None
    why = host_refusal(target, allow_loopback=allow_loopback)
    if why is not None:
        raise refuse(f"must name a public host, not {why}")
    if target.scheme != "https" and not (allow_loopback and target.loopback):
        raise refuse("must use https")
    return target.url


# -- delivery --------------------------------------------------------------------------------

DELIVERY_ERRORS = ("timeout", "refused_by_policy", "connection_failed")


class DeliveryError(Exception):
    """A POST that got no HTTP answer. ``reason`` is one of :data:`DELIVERY_ERRORS`: what a
    job reports, with no network detail (which port refused, which name did not resolve)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason if reason in DELIVERY_ERRORS else "connection_failed"


class HttpPoster(Protocol):
    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], *, allow_loopback: bool = False
    ) -> int:
        """POST without following redirects and return the status; raise
        :class:`DeliveryError` when there is no answer. ``allow_loopback``: the policy the
        URL was checked with (a poster that resolves names checks the addresses again)."""
        ...


# -- the sender ------------------------------------------------------------------------------

DescribeJob = Callable[[Job, str], dict[str, Any]]


@dataclass(frozen=True)
class WebhookPolicy:
    """How deliveries are made: whether loopback receivers are allowed (local testing),
    the backoff base, and how many attempts before a delivery is abandoned."""

    allow_loopback: bool = False
    retry_base_seconds: float = 5.0
    max_attempts: int = 6


class WebhookSender:
    """Signs and POSTs a finished job's webhook, retried with backoff under one id.

    ``describe``: the job's body as ``GET /v1/jobs/{id}`` shows it (the API layer's
    presentation, given the origin the job was submitted on), which the event carries.
    """

    def __init__(
        self,
        *,
        store: JobStore,
        queue: JobQueue,
        keys: KeyStore,
        signer: UrlSigner,
        poster: HttpPoster,
        describe: DescribeJob,
        policy: WebhookPolicy,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._queue = queue
        self._keys = keys
        self._signer = signer
        self._poster = poster
        self._describe = describe
        self._policy = policy
        self._clock = clock

    def check(self, url: str) -> str:
        """A submitted ``webhook_url`` in its canonical spelling, or ``400``."""
        return check_url(url, allow_loopback=self._policy.allow_loopback)

    async def enqueue(self, job: Job) -> None:
        """Queue the delivery of a finished job's webhook, if it has one."""
        if job.webhook_url is not None:
            await self._queue.send({"type": "webhook", "job_id": job.id})

    def payload(self, job: Job) -> bytes:
        event = (
            "image.generation.succeeded" if job.status == SUCCEEDED else ("image.generation.failed")
        )
        data = self._describe(job, job.request.get("base_url", ""))
        data.pop("webhook", None)
        return json.dumps(
            {"type": event, "timestamp": job.updated, "data": data}, separators=(",", ":")
        ).encode()

    async def deliver(self, job_id: str, attempts: int) -> Disposition:
        """One delivery attempt of a queue message: acknowledged when delivered, abandoned
        or pointless; otherwise retried with backoff."""
        job = await self._store.get(job_id)
        if job is None or job.webhook_url is None or job.status not in (SUCCEEDED, FAILED):
            return ACK
        if (job.webhook or {}).get("state") == "delivered":
            return ACK  # a duplicate message: the receiver already has it
        key_id = job.request["key_id"]
        record = await self._keys.get(key_id)  # its secret rotates with the key
        secrets = secrets_for_key(
            self._signer, key_id, None if record is None else record.rotated_at
        )
        body = self.payload(job)
        message_id = f"{job.id}.{job.status}"
        headers = signed_headers(secrets, message_id, body, now=self._clock())
        status, error = await self._post(job.webhook_url, body, headers)
        now = self._clock()
        state: dict[str, Any] = {
            "attempts": attempts,
            "last_status": status,
            "last_attempt": int(now),
            "id": message_id,
        }
        if error is None:
            await self._store.record_webhook(job.id, {**state, "state": "delivered"}, now)
            return ACK
        if attempts >= self._policy.max_attempts or error == "refused_by_policy":
            log.warning("webhook for %s abandoned after %d attempts", job.id, attempts)
            await self._store.record_webhook(
                job.id, {**state, "state": "failed", "error": error}, now
            )
            return ACK
        await self._store.record_webhook(
            job.id, {**state, "state": "retrying", "error": error}, now
        )
        return Disposition(retry_in=backoff(self._policy.retry_base_seconds, attempts))

    async def _post(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int | None, str | None]:
        """POST a delivery: ``(status, error)``, the error from a fixed vocabulary
        (``http_<status>``, or a :data:`DELIVERY_ERRORS` reason) and never the network's own
        words, which would tell a caller what answers where."""
        allow_loopback = self._policy.allow_loopback
        try:  # checked again: the policy may have changed since the job was submitted
            check_url(url, allow_loopback=allow_loopback)
        except ApiError:
            return None, "refused_by_policy"
        try:
            status = await self._poster.post(url, body, headers, allow_loopback=allow_loopback)
        except DeliveryError as exc:
            return None, exc.reason
        except Exception as exc:
            log.warning("webhook delivery failed: %s", type(exc).__name__)
            return None, "connection_failed"
        return status, None if 200 <= status < 300 else f"http_{status}"
