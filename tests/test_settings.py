import pytest

from fluxgate.service.settings import ConfigError, Settings


def test_defaults():
    s = Settings.from_mapping({})
    assert s.cache_scope == "key" and s.signed_url_ttl_seconds == 3600
    assert s.cache_ttl_seconds >= 60


def test_values_come_from_prefixed_variables():
    s = Settings.from_mapping(
        {
            "FLUXGATE_CACHE_SCOPE": "global",
            "FLUXGATE_DENY_TERMS": '["gore", "blood"]',
            "FLUXGATE_DENY_PATTERNS": r"\bnsfw\b",
            "FLUXGATE_PUBLIC_BASE_URL": "https://img.example.com/",
            "CACHE_SCOPE": "ignored without the prefix",
        },
        prefix="FLUXGATE_",
    )
    assert s.cache_scope == "global"
    assert s.deny_terms == ("gore", "blood")
    assert s.deny_patterns == (r"\bnsfw\b",)
    assert s.public_base_url == "https://img.example.com"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CACHE_TTL_SECONDS", "30"),
        ("CACHE_SCOPE", "everyone"),
        ("DENY_PATTERNS", '["("]'),
        ("PUBLIC_BASE_URL", "ftp://x"),
        ("SIGNED_URL_TTL_SECONDS", "999999999"),
        ("MAX_PROMPT_LENGTH", "lots"),
    ],
)
def test_invalid_values_name_the_variable(name, value):
    with pytest.raises(ConfigError) as exc:
        Settings.from_mapping({f"FLUXGATE_{name}": value}, prefix="FLUXGATE_")
    assert "Invalid configuration" in str(exc.value)
    if name != "SIGNED_URL_TTL_SECONDS":
        assert f"FLUXGATE_{name}" in str(exc.value)
