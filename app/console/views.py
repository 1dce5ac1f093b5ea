"""The console's pages and actions. Every action calls the same services, with the same
wallet scoping, as the API routes do."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import g, redirect, render_template, request, url_for

from app.console import present
from app.console.blueprint import acted, bp, signed_in
from app.state import state
from shared.errors import ServiceError
from shared.event_types import EVENT_TYPES, TEST_EVENT_TYPE
from shared.models import FINISHED, Webhook
from shared.services import delivery_log, overview, webhook_tests, webhooks
from shared.store.rows import Outgoing
from shared.timeutil import utcnow

PAGE = 25
MAX_OFFSET = delivery_log.COUNT_CAP - PAGE
# The operator's webhook filter is a list up to this many webhooks, a field for an id beyond:
# a page that listed 10,000 webhooks took 0.5 s to build and nobody scrolls it.
FILTER_CHOICES = 100


@bp.get("/webhooks")
@signed_in(admin=False)
def webhook_list():
    with state().db.session() as db:
        rows = webhooks.list_webhooks(db, g.viewer.wallet_id)
    return render_template(
        "console/webhooks.html",
        webhooks=rows,
        event_types=EVENT_TYPES,
        test_type=TEST_EVENT_TYPE,
        notice=g.console.pop_notice(),
        limit=state().settings.max_webhooks_per_wallet,
    )


@bp.post("/webhooks")
@signed_in(admin=False)
def webhook_create():
    app_state = state()
    form = request.form
    wanted = webhooks.WebhookRequest(
        url=form.get("url", "").strip(),
        custom_headers=present.parse_custom_headers(form.get("customHeaders", "")),
        event_types=form.getlist("eventTypes") or None,
        signature_scheme=form.get("signatureScheme") or "v1",
    )
    try:
        with app_state.db.transaction() as db:
            webhook = webhooks.create_webhook(db, app_state.settings, g.viewer.wallet_id, wanted)
            shown = present.new_secret(webhook)
    except ServiceError as exc:
        return acted(
            "error", f"The webhook was not registered: {exc.detail}", "console.webhook_list"
        )
    return render_template("console/secret.html", done="registered", webhook=shown)


@bp.post("/webhooks/<uuid:webhook_id>/rotate-secret")
@signed_in(admin=False)
def webhook_rotate(webhook_id):
    app_state = state()
    with app_state.db.transaction() as db:
        webhook = webhooks.rotate_secret(db, app_state.settings, g.viewer.wallet_id, webhook_id)
        shown = present.new_secret(webhook)
    return render_template("console/secret.html", done="rotated", webhook=shown)


@bp.post("/webhooks/<uuid:webhook_id>/test")
@signed_in(admin=False)
def webhook_test(webhook_id):
    app_state = state()
    try:
        with app_state.db.transaction() as db:
            delivery = webhook_tests.send_test_event(
                db, g.viewer.wallet_id, webhook_id, request.form.get("type") or None
            )
    except ServiceError as exc:
        if exc.status == 404:
            raise
        return acted("error", f"No test event was sent: {exc.detail}", "console.webhook_list")
    app_state.send([Outgoing.of(delivery)])
    g.console.notice("success", "A test event is on its way to this webhook alone.")
    return redirect(url_for("console.delivery_page", delivery_id=delivery.id), 303)


@bp.post("/webhooks/<uuid:webhook_id>/enable")
@signed_in()
def webhook_enable(webhook_id):
    with state().db.transaction() as db:
        webhook = webhooks.enable_webhook(db, g.viewer.wallet_id, webhook_id)
        url = webhook.url
    return acted("success", f"{url} is enabled: attempts go out again.", "console.home")


@bp.post("/webhooks/<uuid:webhook_id>/recover")
@signed_in()
def webhook_recover(webhook_id):
    since = present.parse_time(request.form.get("since"))
    if since is None:
        return acted("error", "Give the time to recover from (UTC).", "console.home")
    app_state = state()
    outgoing = app_state.db.in_batches(
        lambda db: webhooks.recover_webhook(db, g.viewer.wallet_id, webhook_id, since),
        then=app_state.send,
    )
    text = f"{len(outgoing)} failed deliveries since {present.when(since)} are being sent again."
    return acted("success", text, "console.home")


@bp.route("/webhooks/<uuid:webhook_id>/delete", methods=["GET", "POST"])
@signed_in(admin=False)
def webhook_delete(webhook_id):
    app_state = state()
    if request.method == "GET":
        with app_state.db.session() as db:
            webhook = webhooks.get_webhook(db, g.viewer.wallet_id, webhook_id)
            return render_template("console/delete.html", webhook=webhook)
    app_state.delete_webhook(g.viewer.wallet_id, webhook_id)
    g.console.notice("success", "The webhook is deleted; its unfinished deliveries are cancelled.")
    return redirect(url_for("console.webhook_list"), 303)


@bp.get("/deliveries")
@signed_in()
def delivery_list():
    args = request.args
    filters = delivery_log.DeliveryFilter(
        status=args.get("status") if args.get("status") in present.STATUSES else None,
        webhook_id=present.parse_uuid(args.get("webhook")),
        event_id=present.parse_uuid(args.get("event")),
        created_since=present.parse_time(args.get("since")),
        created_before=present.parse_time(args.get("until")),
    )
    # Pages reach back as far as the count goes: older ones are found by their time.
    offset = min(max(args.get("offset", 0, type=int), 0), MAX_OFFSET)
    with state().db.session() as db:
        rows, more = delivery_log.list_deliveries(db, g.viewer.wallet_id, offset, PAGE, filters)
        count = delivery_log.count_deliveries(db, g.viewer.wallet_id, filters)
        hooks = _visible_webhooks(db)
    kept = {key: value for key, value in args.items() if key != "offset" and value}
    pages = {
        "previous": _page_url(kept, offset - PAGE) if offset > 0 else None,
        "next": _page_url(kept, offset + PAGE) if more and offset + PAGE <= MAX_OFFSET else None,
        "by_time": more and offset + PAGE > MAX_OFFSET,
    }
    return render_template(
        "console/deliveries.html",
        deliveries=rows,
        count=count,
        offset=offset,
        shown=len(rows),
        args=args,
        statuses=present.STATUSES,
        webhooks=hooks,
        pages=pages,
        notice=g.console.pop_notice(),
        filtered=filters != delivery_log.DeliveryFilter(),
    )


def _visible_webhooks(db) -> list[Webhook] | None:
    """The webhooks the filter offers; None: too many to list, the filter takes an id."""
    if g.viewer.admin:
        hooks = overview.first_webhooks(db, FILTER_CHOICES + 1)
        return hooks if len(hooks) <= FILTER_CHOICES else None
    return webhooks.list_webhooks(db, g.viewer.wallet_id)


def _page_url(kept: dict, offset: int) -> str:
    return url_for("console.delivery_list") + "?" + urlencode({**kept, "offset": offset})


@bp.get("/deliveries/<uuid:delivery_id>")
@signed_in()
def delivery_page(delivery_id):
    app_state = state()
    with app_state.db.session() as db:
        delivery = delivery_log.get_delivery(db, g.viewer.wallet_id, delivery_id)
        attempts = delivery_log.attempts_of(db, delivery_id)
        webhook = db.get(Webhook, delivery.webhook_id) if delivery.webhook_id else None
        event = overview.stored_event(db, delivery.event_id)
        traceparent = None if event is None else event.traceparent
        headers = present.headers_sent(delivery, webhook, app_state.settings, traceparent)
    return render_template(
        "console/delivery.html",
        delivery=delivery,
        attempts=attempts,
        body=present.pretty_json(None if event is None else event.body),
        headers=headers,
        notice=g.console.pop_notice(),
        redeliverable=delivery.status in FINISHED and delivery.webhook_id,
    )


@bp.post("/deliveries/<uuid:delivery_id>/redeliver")
@signed_in()
def delivery_redeliver(delivery_id):
    app_state = state()
    try:
        with app_state.db.transaction() as db:
            delivery = delivery_log.redeliver(db, g.viewer.wallet_id, delivery_id)
    except ServiceError as exc:
        if exc.status == 404:
            raise
        g.console.notice("error", f"Not redelivered: {exc.detail}")
    else:
        app_state.send([Outgoing.of(delivery)])
        g.console.notice("success", "Redelivery started: a fresh round of attempts.")
    return redirect(url_for("console.delivery_page", delivery_id=delivery_id), 303)


@bp.get("/wallets")
@signed_in(admin=True)
def wallet_list():
    with state().db.session() as db:
        listed = overview.wallets_with_webhooks(db)
    return render_template("console/wallets.html", listed=listed, notice=g.console.pop_notice())


@bp.get("/overview")
@signed_in(admin=True)
def overview_page():
    with state().db.session() as db:
        hour = overview.last_hour(db, utcnow())
    first, last = present.minute_labels(hour)
    return render_template(
        "console/overview.html",
        hour=hour,
        charts=present.charts(hour),
        first=first,
        last=last,
        notice=g.console.pop_notice(),
    )
