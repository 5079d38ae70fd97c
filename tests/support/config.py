"""The configuration a test declares, for both runtimes at once.

Configuration is declared, never changed mid-test, so that one declaration means the same
on both runtimes: ``@pytest.mark.settings(field=value)`` (merged from module to test; a
field of :class:`Settings`) reaches the local gateway as its ``Settings`` and the Worker on
workerd as its ``[vars]`` (:func:`setting_vars`); ``@pytest.mark.secrets(NAME=value)`` does
the same for the secrets, where ``None`` leaves one unset; ``@pytest.mark.unbound("images")``
runs both without a binding; ``@pytest.mark.rate_limits(rules)`` declares the policy's rules
and, on workerd, one Rate Limiting binding each.

``--no-fast-path`` runs every test with ``fast_path=False``, as if each module were marked
``settings(fast_path=False)``: a test's own ``settings`` marker still wins, so a test about
the fast path keeps what it states.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from fluxgate.delivery.signing import UrlSigner, parse_signing_keys
from fluxgate.service.settings import Settings

from .c2pa_chain import issue_chain

ADMIN_TOKEN = "admin-token-for-tests-0123456789"
SIGNING_KEYS = "k2=" + "s" * 40 + ",k1=" + "o" * 40
# The C2PA signing identity of both runtimes: one chain per test process, valid over the
# real time (validators check it) and the local runtime's fake clock (2027) alike. Its
# root is the trust anchor the tests' validator is given (C2PA_ROOT).
C2PA_CHAIN = issue_chain(
    not_before=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    not_after=dt.datetime(2036, 1, 1, tzinfo=dt.UTC),
)
C2PA_ROOT = C2PA_CHAIN.root_pem
SECRETS: dict[str, str | None] = {
    "ADMIN_TOKEN": ADMIN_TOKEN,
    "URL_SIGNING_KEYS": SIGNING_KEYS,
    "C2PA_SIGNING_KEY": C2PA_CHAIN.key_pem,
    "C2PA_CERTIFICATE_CHAIN": C2PA_CHAIN.chain_pem,
}
NO_FAST_PATH = "--no-fast-path"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        NO_FAST_PATH,
        action="store_true",
        help="run every test with the setting fast_path=False, on both runtimes (the Worker"
        ' through its [vars], FAST_PATH="false"), unless a test marks settings(fast_path=...)',
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "settings(**fields): settings for both runtimes (Settings field names)"
    )
    config.addinivalue_line(
        "markers",
        "secrets(**values): ADMIN_TOKEN / URL_SIGNING_KEYS / C2PA_* for both (None: unset)",
    )
    config.addinivalue_line(
        "markers", "unbound(*tables): both runtimes without these bindings ('images')"
    )
    config.addinivalue_line(
        "markers",
        "rate_limits(rules): the policy's rate-limit rules {name: {limit, period}}, enforced"
        " by both runtimes (on workerd, one RATE_LIMIT_<NAME> binding each)",
    )


def option_settings(config: pytest.Config) -> dict[str, Any]:
    """The settings the command line gives every test (``--no-fast-path``)."""
    return {"fast_path": False} if config.getoption(NO_FAST_PATH) else {}


def marked(request: pytest.FixtureRequest, name: str) -> dict[str, Any]:
    """The keyword arguments of every ``name`` marker, module first, the test's last."""
    values: dict[str, Any] = {}
    for marker in reversed(list(request.node.iter_markers(name))):
        values.update(marker.kwargs)
    return values


def setting_vars(settings: Settings) -> dict[str, Any]:
    """The settings that differ from the defaults, as the Worker's [vars] spell them."""
    changed = settings.model_dump(exclude_defaults=True, mode="json")
    return {name.upper(): value for name, value in changed.items()}


def rate_limit_rules_of(request: pytest.FixtureRequest) -> dict[str, dict[str, int]]:
    """The test's ``@pytest.mark.rate_limits(rules)``, or none."""
    marker = request.node.get_closest_marker("rate_limits")
    return dict(marker.args[0]) if marker else {}


@pytest.fixture
def settings(request: pytest.FixtureRequest) -> Settings:
    return Settings(**{**option_settings(request.config), **marked(request, "settings")})


@pytest.fixture
def secrets(request: pytest.FixtureRequest) -> dict[str, str | None]:
    return {**SECRETS, **marked(request, "secrets")}


@pytest.fixture
def unbound(request: pytest.FixtureRequest) -> tuple[str, ...]:
    """The wrangler.toml tables this test runs without (``@pytest.mark.unbound("images")``):
    on workerd a configuration without them, locally the matching port left out."""
    return tuple(
        sorted({name for marker in request.node.iter_markers("unbound") for name in marker.args})
    )


@pytest.fixture
def signer(secrets: dict[str, str | None]) -> UrlSigner:
    """A signer with the runtime's URL-signing keys (the first signs, all verify)."""
    return UrlSigner(parse_signing_keys(secrets["URL_SIGNING_KEYS"] or ""))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
