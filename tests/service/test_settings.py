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


class WorkerEnv:
    """A Worker's ``env``: vars and secrets as attributes, bindings as objects."""

    def __init__(self, **values: object) -> None:
        for name, value in values.items():
            setattr(self, name, value)


def test_the_worker_reads_its_vars_as_the_local_runtime_reads_its_environment():
    from fluxgate.edge.front.config import EnvVars

    values = {"CACHE_SCOPE": "global", "FAST_PATH": "off", "AI_DISCLOSURE": "0"}
    on_worker = Settings.from_mapping(EnvVars(WorkerEnv(**values, KV=object(), API_DOCS="")))
    local = Settings.from_mapping({f"FLUXGATE_{k}": v for k, v in values.items()}, "FLUXGATE_")
    assert on_worker == local
    assert (on_worker.cache_scope, on_worker.fast_path, on_worker.ai_disclosure) == (
        "global",
        False,
        False,
    )


@pytest.mark.parametrize("value", ["maybe", "2"])
def test_a_worker_var_that_does_not_validate_is_named(value):
    from fluxgate.edge.front.config import EnvVars

    with pytest.raises(ConfigError) as exc:
        Settings.from_mapping(EnvVars(WorkerEnv(AI_DISCLOSURE=value)))
    assert "AI_DISCLOSURE" in str(exc.value)
