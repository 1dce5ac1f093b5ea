"""GET /events/types, the catalogue, and POST /events/webhooks/{id}/test's refusals."""

import jsonschema_rs
import pytest

from tests.helpers import admin_headers, assert_problem, onboard_tenant

TYPES = "/cloud-agent/events/types"
PUBLISHED = ["ConnectionUpdated", "IssueCredentialRecordUpdated", "PresentationUpdated"]


def test_the_catalogue_lists_every_type_with_its_schema_version_and_example(client, tenant):
    page = client.get(TYPES, headers=tenant.headers)
    assert page.status_code == 200
    assert page.json["kind"] == "EventTypePage"
    entries = {entry["type"]: entry for entry in page.json["contents"]}
    assert list(entries) == [*PUBLISHED, "DIDStatusUpdated", "WebhookTest"]
    for name, entry in entries.items():
        assert entry["description"] and entry["schemaVersion"] == "1.0"
        assert entry["example"]["type"] == name
        assert set(entry["example"]) == {"type", "id", "ts", "data", "walletId"}
        # The example is valid by the schema it comes with.
        jsonschema_rs.validate(entry["dataSchema"], entry["example"]["data"])
    assert [e["type"] for e in entries.values() if not e["publishable"]] == ["WebhookTest"]
    assert client.get(TYPES, headers=admin_headers()).json == page.json
    assert_problem(client.get(TYPES), 401, "error:AuthenticationError:InvalidCredentials")


@pytest.mark.parametrize("name", [*PUBLISHED, "DIDStatusUpdated"])
def test_each_schema_says_what_post_events_accepts_and_refuses(client, tenant, name):
    (entry,) = [
        e for e in client.get(TYPES, headers=tenant.headers).json["contents"] if e["type"] == name
    ]
    schema = entry["dataSchema"]
    example = entry["example"]["data"]
    accepted = tenant.publish(name, {**example, "extra": "passes through"})
    assert accepted.status_code == 202, accepted.json
    jsonschema_rs.validate(schema, {**example, "extra": "passes through"})
    state_field = next(
        f
        for f in schema["required"]
        if f not in ("role",)
        and f in schema["properties"]
        and "enum" in schema["properties"][f]
        and f != "role"
    )
    wrong = {**example, state_field: "NotAState"}
    assert not jsonschema_rs.is_valid(schema, wrong)
    assert_problem(tenant.publish(name, wrong), 400, "BadRequest")
    for required in schema["required"]:
        missing = {k: v for k, v in example.items() if k != required}
        assert not jsonschema_rs.is_valid(schema, missing)
        assert tenant.publish(name, missing).status_code == 400


def test_the_test_route_refuses_an_unknown_type_and_a_foreign_webhook(client, tenant):
    created = tenant.add_webhook("http://localhost:9095")
    path = f"/cloud-agent/events/webhooks/{created['id']}/test"
    assert_problem(
        client.post(path, json={"type": "Nope"}, headers=tenant.headers), 400, "BadRequest"
    )
    other = onboard_tenant(client, "other")
    assert_problem(client.post(path, json={}, headers=other.headers), 404, "NotFound")
