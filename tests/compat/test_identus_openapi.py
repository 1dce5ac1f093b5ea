"""Identus parity, judged by Identus's own OpenAPI document.

A client generated from the Identus Cloud Agent's document must work unchanged against this
service. Schemathesis generates requests from that document's operations under
/events/webhooks, /wallets and /iam (uma-permissions left out: it is Keycloak's), sends them to
the service (on PostgreSQL when TEST_DATABASE_URL names one) and judges every answer against
the document with all its checks. Where Identus's own code asks more than its document says,
the checks allow Identus's answer (REFUSALS, `excused`), each with its reason.

The document is identus-openapi-subset.yaml beside this file: the facts of those operations,
written from `cloud-agent/service/api/http/cloud-agent-openapi-spec.yaml` of
https://github.com/hyperledger-identus/cloud-agent at commit df5d48d. Nothing is fetched.
"""

from pathlib import Path

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    negative_data_rejection,
    unsupported_method,
)

from tests.helpers import ADMIN_TOKEN, DEFAULT_WALLET_KEY

DOCUMENT = Path(__file__).with_name("identus-openapi-subset.yaml")
OPERATIONS = 14
HEADERS = {"apikey": DEFAULT_WALLET_KEY, "x-admin-api-key": ADMIN_TOKEN}
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]  # schemathesis's default

# An entity, with an API key, that exists when each request is sent: half the generated entity
# ids, entityIds and apiKeys are these, and half the wallet ids the default wallet's, so that
# the operations on an entity, a key or a wallet also succeed, not only answer 404.
KNOWN_ENTITY = "0b2d3c4e-5f60-4718-89a0-b1c2d3e4f506"
KNOWN_KEY = "a-known-api-key-0123456789"
DEFAULT_WALLET = "00000000-0000-0000-0000-000000000000"

# Where valid data, by the document, may still be refused: each for a reason Identus shares.
REFUSALS = [
    # 422 "Unable to process the request" depends on what exists, not on the request's shape:
    # a wallet id or seed taken, an entity id taken, too many webhooks. A seed must also be
    # 64 bytes of hex (the document: any string), as Identus's code asks (400).
    {"operation": "createWallet", "refuses": ["400", "422"]},
    {"operation": "createEntity", "refuses": ["422"]},
    # The URL must be an absolute URL (Identus: 400 as well); custom headers must be valid
    # HTTP header fields, not reserved ones (this service's own rule, 400).
    {"operation": "postEventsWebhooks", "refuses": ["400", "422"]},
    # offset >= 0 and limit > 0 (Identus's code: 400), and here limit <= 1000.
    {"operation": "getWallets", "refuses": ["400"]},
    {"operation": "getAllEntities", "refuses": ["400"]},
]


def config() -> SchemathesisConfig:
    known = {"probability": 0.5}
    return SchemathesisConfig.from_dict(
        {
            "seed": 16,
            # The service is set up once per operation, not once per generated request.
            "suppress-health-check": ["all"],
            # NUL and unpaired surrogates cannot be stored in PostgreSQL text: the service refuses
            # them with a 400 (Identus fails with a 500), whatever the field.
            "generation": {
                "max-examples": 25,
                "database": "none",
                "deterministic": True,
                "allow-x00": False,
                "codec": "utf-8",
            },
            "dictionaries": {
                "entity": {"values": [KNOWN_ENTITY]},
                "key": {"values": [KNOWN_KEY]},
                "wallet": {"values": [DEFAULT_WALLET]},
            },
            "parameters": {
                "path.id": {"dictionary": "entity", **known},
                "body.entityId": {"dictionary": "entity", **known},
                "body.apiKey": {"dictionary": "key", **known},
                "path.walletId": {"dictionary": "wallet", **known},
                "body.walletId": {"dictionary": "wallet", **known},
            },
            "operations": [
                {
                    "include-operation-id": refusal["operation"],
                    "checks": {
                        "positive_data_acceptance": {
                            "expected-statuses": ACCEPTED + refusal["refuses"]
                        }
                    },
                }
                for refusal in REFUSALS
            ],
        }
    )


document = schemathesis.openapi.from_path(DOCUMENT, config=config())
SUCCEEDED: set[str] = set()


def test_the_subset_holds_every_operation():
    labels = sorted(result.ok().label for result in document.get_all_operations())
    assert len(labels) == OPERATIONS, labels
    assert not [label for label in labels if "uma-permissions" in label]


@pytest.mark.slow
@document.parametrize()
def test_identus_clients_work_unchanged(case, app, client):
    known = client.post(
        "/cloud-agent/iam/entities",
        json={"name": "known", "id": KNOWN_ENTITY},
        headers={"x-admin-api-key": ADMIN_TOKEN},
    )
    assert known.status_code in (201, 422), known.json
    key = client.post(
        "/cloud-agent/iam/apikey-authentication",
        json={"entityId": KNOWN_ENTITY, "apiKey": KNOWN_KEY},
        headers={"x-admin-api-key": ADMIN_TOKEN},
    )
    assert key.status_code == 201, key.json
    # In process: this service's routes, database and broker, without a server in between;
    # the checks that send requests of their own (without credentials, say) send them there too.
    case.operation.schema.app = app
    response = case.call_and_validate(
        headers=HEADERS,
        app=app,
        additional_checks=[route_exists],
        excluded_checks=excused(case),
    )
    if 200 <= response.status_code < 300 and case.method.upper() == case.operation.method.upper():
        SUCCEEDED.add(case.operation.label)


@pytest.mark.slow
def test_every_operation_succeeded_at_least_once():
    """A 404 or a 400 is a valid answer for most operations: this proves each one also works,
    from the answers the generated requests above got. Deleting a webhook is left out: the
    generated ids are never those of a webhook."""
    labels = {result.ok().label for result in document.get_all_operations()}
    assert SUCCEEDED == labels - {"DELETE /events/webhooks/{id}"}


def route_exists(ctx, response, case):
    """Every operation of the document is a route here: a valid request of it meets no
    'unknown path' or 'wrong method'. (A path segment that is no UUID is an unknown path, as
    in Identus; probes with other methods are the `unsupported_method` check's.)"""
    valid = case.meta is not None and case.meta.generation.mode.is_positive
    if not valid or case.method.upper() != case.operation.method.upper():
        return None
    body = response.json() if response.status_code in (404, 405) else {}
    if response.status_code == 405 or body.get("type") == "error:ResourcePathNotFound":
        raise AssertionError(f"{case.operation.label} is not served: {body}")


def excused(case) -> list:
    """Checks a case is excused from, each for its reason.

    `"customHeaders": null` is no schema-violating body: Identus's own code reads the field as
    optional (`customHeaders: Option[Map[String, String]]`, null being None), as this service
    does; only the document forgets to say null. Every other check still judges such a case."""
    if case.operation.label == "DELETE /events/webhooks/{id}":
        # The path also serves PATCH here (changing a webhook: beyond Identus), so its 405
        # answers and Allow header name PATCH, which the Identus document does not know.
        return [unsupported_method, allow_header_conformance]
    body = case.body
    if (
        case.operation.label == "POST /events/webhooks"
        and isinstance(body, dict)
        and "customHeaders" in body
        and body["customHeaders"] is None
    ):
        return [negative_data_rejection]
    return []
