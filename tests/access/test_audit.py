"""The audit log: every refusal and admin action, as JSON, without secrets."""

import json

import httpx
import pytest

from ..support.admin import put_policy
from ..support.config import ADMIN_TOKEN

pytestmark = pytest.mark.runtimes("local", "worker")

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_admin_actions_are_audited_without_keys(client, audit_lines):
    created = client.post("/v1/admin/keys", json={"name": "a"}, headers=ADMIN).json()
    client.post(f"/v1/admin/keys/{created['id']}/rotate", headers=ADMIN)
    client.patch(f"/v1/admin/keys/{created['id']}", json={"name": "b"}, headers=ADMIN)
    client.post(f"/v1/admin/keys/{created['id']}/revoke", headers=ADMIN)
    client.put("/v1/admin/policy", json={"version": 2}, headers=ADMIN)
    actions = [(line["action"], line.get("target")) for line in audit_lines()]
    assert actions == [
        ("key.create", created["id"]),
        ("key.rotate", created["id"]),
        ("key.update", created["id"]),
        ("key.revoke", created["id"]),
        ("policy.replace", None),
    ]
    text = json.dumps(audit_lines())
    assert created["key"] not in text and ADMIN_TOKEN not in text
    assert all(line["actor"] == "admin_token" and "time" in line for line in audit_lines())


def test_refusals_are_audited(client, auth, audit_lines):
    client.post(
        "/v1/images/generations",
        json={"prompt": "x"},
        headers={"Authorization": "Bearer fgk_wrong"},
    )
    client.post("/v1/images/generations", json={"prompt": "x", "steps": 99}, headers=auth)
    refusals = [line for line in audit_lines() if line["action"] == "request.refused"]
    assert [(r["reason"], r["status"]) for r in refusals] == [
        ("invalid_api_key", 401),
        ("invalid_request", 400),
    ]
    assert refusals[0]["key_id"] is None and refusals[1]["key_id"].startswith("key_")


def test_refused_downloads_are_audited_by_path_without_their_signature(client, audit_lines):
    path = "/v1/files/images/" + "0" * 64 + ".png"
    response = client.get(f"{path}?exp=4102444800&kid=edge1&sig=forged-signature")
    assert response.status_code == 403
    refusals = [line for line in audit_lines() if line["action"] == "request.refused"]
    assert [(r["reason"], r["status"], r["path"]) for r in refusals] == [
        (response.json()["error"]["code"], 403, path)
    ]
    assert "forged-signature" not in json.dumps(audit_lines())


@pytest.mark.parametrize(
    "allowed",
    [
        pytest.param(True, marks=pytest.mark.settings(audit_log_prompts=True), id="allowed"),
        pytest.param(False, marks=pytest.mark.settings(audit_log_prompts=False), id="default"),
    ],
)
def test_prompts_are_logged_only_when_allowed(client, auth, audit_lines, allowed):
    put_policy(client, deny_terms=["secret"])
    client.post("/v1/images/generations", json={"prompt": "a secret plan"}, headers=auth)
    if allowed:
        assert audit_lines()[-1]["prompt"] == "a secret plan"
    else:
        assert "prompt" not in audit_lines()[-1] and "prompt_sha256" in audit_lines()[-1]


def test_on_workers_audit_lines_reach_workers_logs_as_log_not_error(workerd):
    """workerd reports a Worker's stderr at level ``error``; an audit line is information
    (a key made, a request refused), so it goes to ``console.log``."""
    with httpx.Client(base_url=workerd.base, timeout=60) as client:
        client.post("/v1/admin/keys", json={"name": "a"}, headers=ADMIN)
        client.get("/v1/usage", headers={"Authorization": "Bearer fgk_wrong"})
    audit = [e for e in workerd.console() if '"type":"audit"' in e["message"].replace(" ", "")]
    assert [json.loads(e["message"])["action"] for e in audit] == ["key.create", "request.refused"]
    assert {e["level"] for e in audit} == {"log"}
    assert not [e for e in workerd.console() if e["level"] == "error"]
