"""The four event types of the Identus agent and what their `data` must carry, with what the
catalogue (`GET /events/types`) says of each; and `WebhookTest`, which only the test route
sends."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from shared.errors import InvalidInput


@dataclass(frozen=True)
class EventType:
    name: str
    id_field: str
    id_is_uuid: bool
    roles: tuple[str, ...]
    state_field: str
    states: tuple[str, ...]
    notified_states: tuple[str, ...] | None = None  # None: every state is notified
    description: str = ""
    example_id: str = ""
    # Raised when what `data` must carry changes, so receivers can tell.
    schema_version: str = "1.0"

    def example_data(self) -> dict:
        """A `data` this type accepts (and notifies): its example id, first role and state."""
        data = {self.id_field: self.example_id}
        if self.roles:
            data["role"] = self.roles[0]
        data[self.state_field] = (self.notified_states or self.states)[0]
        return data


EVENT_TYPES = {
    t.name: t
    for t in (
        EventType(
            "ConnectionUpdated",
            "connectionId",
            True,
            ("Inviter", "Invitee"),
            "state",
            (
                "InvitationGenerated",
                "InvitationReceived",
                "InvitationExpired",
                "ConnectionRequestPending",
                "ConnectionRequestSent",
                "ConnectionRequestReceived",
                "ConnectionResponsePending",
                "ConnectionResponseSent",
                "ConnectionResponseReceived",
                "ProblemReportPending",
                "ProblemReportSent",
                "ProblemReportReceived",
            ),
            description="A DIDComm connection changed "
            "state (an invitation, a request, a response or a problem report).",
            example_id="c10787cf-99bb-47f4-99bb-1fdcca32b673",
        ),
        EventType(
            "IssueCredentialRecordUpdated",
            "recordId",
            False,
            ("Issuer", "Holder"),
            "protocolState",
            (
                "OfferPending",
                "OfferSent",
                "OfferReceived",
                "RequestPending",
                "RequestGenerated",
                "RequestSent",
                "RequestReceived",
                "ProblemReportPending",
                "ProblemReportSent",
                "ProblemReportReceived",
                "CredentialPending",
                "CredentialGenerated",
                "CredentialSent",
                "CredentialReceived",
                "InvitationGenerated",
                "InvitationExpired",
            ),
            description="A credential issuance record changed "
            "protocol state (offer, request, credential or a problem report).",
            example_id="3a3f4d2b-5f0c-4d5e-9a51-6b1f2c0e8d7a",
        ),
        EventType(
            "PresentationUpdated",
            "presentationId",
            False,
            ("Verifier", "Prover"),
            "status",
            (
                "ProposalPending",
                "ProposalSent",
                "ProposalReceived",
                "ProposalRejected",
                "RequestPending",
                "RequestSent",
                "RequestReceived",
                "RequestRejected",
                "ProblemReportPending",
                "ProblemReportSent",
                "ProblemReportReceived",
                "PresentationPending",
                "PresentationGenerated",
                "PresentationSent",
                "PresentationReceived",
                "PresentationVerified",
                "PresentationVerificationFailed",
                "PresentationAccepted",
                "PresentationRejected",
                "InvitationGenerated",
                "InvitationExpired",
            ),
            description="A presentation record changed "
            "status (proposal, request, presentation, verification or a problem report).",
            example_id="8f1e2d3c-4b5a-4978-8e6f-1a2b3c4d5e6f",
        ),
        EventType(
            "DIDStatusUpdated",
            "did",
            False,
            (),
            "status",
            ("CREATED", "PUBLICATION_PENDING", "PUBLISHED"),
            notified_states=("PUBLISHED",),
            description="A DID changed publication status; only PUBLISHED is sent to webhooks.",
            example_id="did:prism:4262377859267f308a86ec8fa6ba5bd4c1cd60fbaa2c1b1ff5e6e4f2c6b0e8a1",
        ),
    )
}


# Sent by POST /events/webhooks/{id}/test only: never published, fanned out or filtered.
TEST_EVENT_TYPE = "WebhookTest"
TEST_EVENT_DESCRIPTION = (
    "A test event sent to one webhook by POST /events/webhooks/{id}/test (or the console's "
    "Send test event button); never published by the agent."
)
TEST_EVENT_SCHEMA_VERSION = "1.0"


def webhook_test_data(webhook_id) -> dict:
    return {"webhookId": str(webhook_id), "message": "A test event from cloud-agent-webhooks."}


def check_event(type_name: str, data: dict) -> EventType:
    """The event type, once `data` carries its id, role and a known state; else InvalidInput."""
    event_type = EVENT_TYPES.get(type_name)
    if event_type is None:
        raise InvalidInput(f"type: must be one of {', '.join(EVENT_TYPES)}, got {type_name!r}")
    if not isinstance(data, dict):
        raise InvalidInput("data: must be a JSON object")
    _check_id(event_type, data.get(event_type.id_field))
    if event_type.roles:
        role = data.get("role")
        if role not in event_type.roles:
            raise InvalidInput(
                f"data.role: must be one of {', '.join(event_type.roles)}, got {role!r}"
            )
    state = data.get(event_type.state_field)
    if state not in event_type.states:
        raise InvalidInput(f"data.{event_type.state_field}: not a {type_name} state: {state!r}")
    return event_type


def _check_id(event_type: EventType, value) -> None:
    field = f"data.{event_type.id_field}"
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{field}: required, a non-empty string")
    if event_type.id_is_uuid:
        try:
            uuid.UUID(value)
        except ValueError:
            raise InvalidInput(f"{field}: must be a UUID, got {value!r}") from None
    if event_type.name == "DIDStatusUpdated" and not value.startswith("did:"):
        raise InvalidInput(f"{field}: must start with 'did:', got {value!r}")


def is_notified(event_type: EventType, data: dict) -> bool:
    if event_type.notified_states is None:
        return True
    return data.get(event_type.state_field) in event_type.notified_states


def record_key(event_type: EventType, data: dict) -> str:
    """The record an event is about: its type and its id (a connection, a credential record,
    a presentation, a DID). Per-record ordering keeps the order of events with the same key."""
    return f"{event_type.name}:{data[event_type.id_field]}"
