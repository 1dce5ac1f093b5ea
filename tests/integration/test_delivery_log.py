"""The delivery log and redelivery, as tenants and the operator see them through the API, with a
real worker delivering to real receivers.

The module runs with a global webhook (so the log holds deliveries no tenant may see) and a 1 s
retry countdown (long enough to catch a delivery between two attempts).
"""

from __future__ import annotations

import time
import uuid

from tests.deliveries import DELIVERIES, WAIT, detail, header, wait_until
from tests.helpers import admin_headers, connection_event, onboard_tenant

FINISHED = ("delivered", "failed", "cancelled")


GLOBAL_WEBHOOK = {}
SERVICE_ENV = {"WEBHOOK_RETRY_COUNTDOWN": "1"}


def listing(client, headers, **query) -> dict:
    response = client.get(DELIVERIES, query_string=query, headers=headers)
    assert response.status_code == 200, response.json
    assert response.json["kind"] == "DeliveryPage"
    return response.json


def ids(page: dict) -> set[str]:
    return {row["id"] for row in page["contents"]}


def redeliver(client, headers, delivery_id: str):
    return client.post(f"{DELIVERIES}/{delivery_id}/redeliver", headers=headers)


def wait_for_status(client, headers, delivery_id: str, statuses) -> dict:
    def probe():
        shown = detail(client, headers, delivery_id)
        return shown if shown["status"] in statuses else None

    return wait_until(probe, f"delivery {delivery_id} to reach {statuses}")


def only_delivery(client, headers, event_id: str) -> dict:
    [delivery] = listing(client, headers, eventId=event_id)["contents"]
    return delivery


def test_a_tenant_lists_and_filters_its_own_deliveries_only(client, receiver, worker):
    acme = onboard_tenant(client, "acme")
    receiver.behave("/bad", then=500)
    good = acme.add_webhook(receiver.url("/good"))
    bad = acme.add_webhook(receiver.url("/bad"))
    first = acme.publish("ConnectionUpdated", connection_event())
    second = acme.publish("ConnectionUpdated", connection_event("InvitationReceived"))
    assert first.status_code == second.status_code == 202
    events = {first.json["id"], second.json["id"]}

    def all_finished():
        page = listing(client, acme.headers)
        rows = page["contents"]
        return page if len(rows) == 4 and all(r["status"] in FINISHED for r in rows) else None

    everything = wait_until(all_finished, "acme's four deliveries to finish")
    # Only the wallet's own webhooks: the global webhook's copies are the operator's business.
    rows = everything["contents"]
    assert {r["target"] for r in rows} == {"wallet"}
    assert {r["walletId"] for r in rows} == {acme.wallet_id}
    assert {(r["eventId"], r["webhookId"]) for r in rows} == {
        (event, hook["id"]) for event in events for hook in (good, bad)
    }
    all_ids = ids(everything)

    failed = listing(client, acme.headers, status="failed")["contents"]
    assert len(failed) == 2
    assert {r["webhookId"] for r in failed} == {bad["id"]}
    assert all(r["attempts"] == 3 and r["lastStatusCode"] == 500 for r in failed)
    delivered = listing(client, acme.headers, status="delivered")["contents"]
    assert {r["webhookId"] for r in delivered} == {good["id"]} and len(delivered) == 2
    assert listing(client, acme.headers, status="pending")["contents"] == []

    by_hook = listing(client, acme.headers, webhookId=good["id"])["contents"]
    assert {r["eventId"] for r in by_hook} == events and len(by_hook) == 2
    by_event = listing(client, acme.headers, eventId=first.json["id"])["contents"]
    assert {r["webhookId"] for r in by_event} == {good["id"], bad["id"]} and len(by_event) == 2
    both = listing(client, acme.headers, eventId=first.json["id"], status="failed")["contents"]
    assert [(r["eventId"], r["webhookId"]) for r in both] == [(first.json["id"], bad["id"])]

    page_one = listing(client, acme.headers, offset=0, limit=3)
    page_two = listing(client, acme.headers, offset=3, limit=3)
    assert len(page_one["contents"]) == 3 and len(page_two["contents"]) == 1
    assert "next" in page_one and "next" not in page_two and "previous" in page_two
    assert ids(page_one) | ids(page_two) == all_ids
    assert not ids(page_one) & ids(page_two)

    # Another tenant sees none of it, and acme's ids answer as ids that do not exist.
    globex = onboard_tenant(client, "globex")
    assert listing(client, globex.headers)["contents"] == []
    assert listing(client, globex.headers, eventId=first.json["id"])["contents"] == []
    assert listing(client, globex.headers, webhookId=bad["id"])["contents"] == []
    unknown = str(uuid.uuid4())
    for delivery_id in [*sorted(all_ids), unknown]:
        shown = client.get(f"{DELIVERIES}/{delivery_id}", headers=globex.headers)
        again = redeliver(client, globex.headers, delivery_id)
        assert (shown.status_code, shown.json["type"]) == (404, "NotFound"), shown.json
        assert (again.status_code, again.json["type"]) == (404, "NotFound"), again.json
    # ...and the refused redelivery changed nothing.
    assert all(detail(client, acme.headers, r["id"])["round"] == 1 for r in failed)
    time.sleep(1.5)
    assert len(receiver.at("/bad")) == 6


def test_redelivering_a_failed_delivery_sends_the_same_bytes_in_a_new_round(
    client, tenant, receiver, worker
):
    receiver.behave("/flaky", then=500)
    tenant.add_webhook(receiver.url("/flaky"))
    published = tenant.publish("ConnectionUpdated", connection_event())
    assert published.status_code == 202
    event_id = published.json["id"]

    assert len(receiver.wait_for("/flaky", 3, timeout=WAIT)) == 3
    delivery = only_delivery(client, tenant.headers, event_id)
    wait_for_status(client, tenant.headers, delivery["id"], ("failed",))

    receiver.behave("/flaky", then=200)  # the receiver is fixed
    answer = redeliver(client, tenant.headers, delivery["id"])
    assert answer.status_code == 202, answer.json
    assert answer.json["id"] == delivery["id"]
    assert answer.json["round"] == 2
    assert answer.json["status"] in ("pending", "in_flight", "delivered")

    arrived = receiver.wait_for("/flaky", 4, timeout=WAIT)
    assert len(arrived) == 4
    assert arrived[3].body == arrived[0].body == published.data
    assert header(arrived[3], "webhook-id") == header(arrived[0], "webhook-id") == event_id

    shown = wait_for_status(client, tenant.headers, delivery["id"], FINISHED)
    assert shown["status"] == "delivered"
    assert (shown["round"], shown["attempts"]) == (2, 1)
    assert [(a["round"], a["number"], a["statusCode"]) for a in shown["attemptLog"]] == [
        (1, 1, 500),
        (1, 2, 500),
        (1, 3, 500),
        (2, 1, 200),
    ]
    time.sleep(1.5)  # one redelivery, one request
    assert len(receiver.at("/flaky")) == 4


def test_an_unfinished_delivery_cannot_be_redelivered(client, tenant, receiver, worker):
    # Each attempt stays in flight for 1 s, then waits 1 s as pending before the next one.
    receiver.behave("/busy", then=500, delay=1.0)
    tenant.add_webhook(receiver.url("/busy"))
    published = tenant.publish("ConnectionUpdated", connection_event())
    assert published.status_code == 202
    delivery = only_delivery(client, tenant.headers, published.json["id"])

    for status in ("in_flight", "pending"):
        wait_for_status(client, tenant.headers, delivery["id"], (status,))
        answer = redeliver(client, tenant.headers, delivery["id"])
        assert answer.status_code == 409, (status, answer.json)
        assert answer.json["type"] == "Conflict", answer.json

    # The refusals did not start a round: the delivery runs its three attempts and fails.
    shown = wait_for_status(client, tenant.headers, delivery["id"], FINISHED)
    assert shown["status"] == "failed"
    assert shown["round"] == 1
    assert [a["number"] for a in shown["attemptLog"]] == [1, 2, 3]
    assert len(receiver.at("/busy")) == 3


def test_the_operator_sees_the_global_webhooks_deliveries_and_tenants_do_not(
    client, tenant, receiver, global_receiver, worker
):
    hook = tenant.add_webhook(receiver.url("/hook"))
    global_before = len(global_receiver.at("/global"))
    published = tenant.publish("ConnectionUpdated", connection_event())
    assert published.status_code == 202
    event_id = published.json["id"]

    def both_delivered():
        rows = listing(client, admin_headers(), eventId=event_id)["contents"]
        return rows if rows and all(r["status"] == "delivered" for r in rows) else None

    rows = wait_until(both_delivered, "the wallet and global deliveries")
    by_target = {r["target"]: r for r in rows}
    assert sorted(by_target) == ["global", "wallet"] and len(rows) == 2
    global_delivery = by_target["global"]
    assert global_delivery["url"] == global_receiver.url("/global")
    # The global webhook's row (its circuit) has a fixed id.
    assert global_delivery["webhookId"] == "ffffffff-ffff-ffff-ffff-ffffffffffff"
    assert global_delivery["walletId"] == tenant.wallet_id
    assert by_target["wallet"]["webhookId"] == hook["id"]
    assert global_delivery["id"] in ids(listing(client, admin_headers()))
    assert global_delivery["id"] in ids(listing(client, admin_headers(), status="delivered"))
    shown = detail(client, admin_headers(), global_delivery["id"])
    assert [(a["number"], a["statusCode"]) for a in shown["attemptLog"]] == [(1, 200)]

    # The tenant sees only its own webhook's copy, and the global one answers 404.
    assert ids(listing(client, tenant.headers, eventId=event_id)) == {by_target["wallet"]["id"]}
    assert global_delivery["id"] not in ids(listing(client, tenant.headers))
    hidden = client.get(f"{DELIVERIES}/{global_delivery['id']}", headers=tenant.headers)
    assert hidden.status_code == 404
    assert redeliver(client, tenant.headers, global_delivery["id"]).status_code == 404

    # The operator can redeliver it: the global receiver gets the same bytes once more.
    assert redeliver(client, admin_headers(), global_delivery["id"]).status_code == 202
    arrived = global_receiver.wait_for("/global", global_before + 2, timeout=WAIT)
    copies = [r for r in arrived if header(r, "webhook-id") == event_id]
    assert [r.body for r in copies] == [published.data, published.data]
    final = wait_for_status(client, admin_headers(), global_delivery["id"], FINISHED)
    assert (final["status"], final["round"]) == ("delivered", 2)
