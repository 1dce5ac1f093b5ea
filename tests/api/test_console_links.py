"""Console links and sessions in-process: a link opens one wallet's console once, before it
expires; sessions end at a fixed time and on sign-out; a cookie made from the database's
contents opens nothing."""

import hashlib
import hmac
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select, update

from app import create_app
from shared.models import ApiKey, ConsoleLink, ConsoleSession, SystemValue
from shared.services.retention import purge
from shared.settings import load_settings
from tests.api.test_console import CONSOLE, csrf_of, sign_in
from tests.helpers import ADMIN_TOKEN, admin_headers, assert_problem, onboard_tenant

SERVICE_ENV = {"CONSOLE_FRAME_ANCESTORS": "https://portal.example.com https://*.acme.example"}
LINKS = "/cloud-agent/console/links"


def make_link(client, wallet_id: str, **fields) -> dict:
    made = client.post(LINKS, json={"walletId": wallet_id, **fields}, headers=admin_headers())
    assert made.status_code == 201, made.json
    assert made.headers["Cache-Control"] == "no-store"
    return made.json


def open_link(client, link: dict):
    return client.get(link["url"].replace("http://localhost", ""))


def test_only_the_operator_makes_links_for_wallets_that_exist(client, tenant):
    link = make_link(client, tenant.wallet_id)
    assert link["url"].startswith("http://localhost/cloud-agent/console/links/open?token=")
    assert link["walletId"] == tenant.wallet_id
    expires = datetime.fromisoformat(link["expiresAt"].replace("Z", "+00:00"))
    assert timedelta(seconds=590) < expires - datetime.now(UTC) <= timedelta(seconds=600)
    refused = client.post(LINKS, json={"walletId": tenant.wallet_id}, headers=tenant.headers)
    assert_problem(refused, 401, "error:AuthenticationError:InvalidCredentials")
    unknown = client.post(LINKS, json={"walletId": str(uuid.uuid4())}, headers=admin_headers())
    assert_problem(unknown, 404, "NotFound")
    for seconds in (0, 3601):
        too = {"walletId": tenant.wallet_id, "expiresIn": seconds}
        assert client.post(LINKS, json=too, headers=admin_headers()).status_code == 400


def test_a_link_opens_its_wallet_only_and_never_the_operators_view(app, client, tenant):
    tenant.add_webhook("http://example.com/acme")
    other = onboard_tenant(client, "globex")
    other.add_webhook("http://example.com/globex")
    visitor = app.test_client()
    opened = open_link(visitor, make_link(client, tenant.wallet_id))
    assert opened.status_code == 303 and opened.headers["Location"].endswith("/console/webhooks")
    cookie = visitor.get_cookie("console_link_session", path=CONSOLE)
    assert cookie.http_only and cookie.secure and cookie.same_site == "None"
    assert "Partitioned" in opened.headers["Set-Cookie"]
    page = visitor.get(f"{CONSOLE}/webhooks")
    html = page.get_data(as_text=True)
    assert "example.com/acme" in html and "example.com/globex" not in html
    assert page.headers["Content-Security-Policy"].endswith(
        "frame-ancestors https://portal.example.com https://*.acme.example"
    )
    assert "X-Frame-Options" not in page.headers
    for operator_page in ("/wallets", "/overview"):
        assert visitor.get(CONSOLE + operator_page).status_code == 404
    # The admin token does not turn a link's session into the operator's.
    assert visitor.get(f"{CONSOLE}/wallets", headers=admin_headers()).status_code == 404
    # Sign-in is never framed, whoever asks.
    form = visitor.get(f"{CONSOLE}/sign-in")
    assert "frame-ancestors 'none'" in form.headers["Content-Security-Policy"]


def test_a_link_is_refused_once_used_and_once_expired(app, client, tenant):
    link = make_link(client, tenant.wallet_id)
    assert open_link(app.test_client(), link).status_code == 303
    again = open_link(app.test_client(), link)
    assert again.status_code == 410 and "already been used" in again.get_data(as_text=True)
    assert "frame-ancestors https://portal.example.com" in again.headers["Content-Security-Policy"]

    short = make_link(client, tenant.wallet_id, expiresIn=1)
    time.sleep(1.2)
    late = open_link(app.test_client(), short)
    assert late.status_code == 410 and "expired" in late.get_data(as_text=True)
    forged = client.get(f"{CONSOLE}/links/open?token=made-up")
    assert forged.status_code == 410 and "not valid" in forged.get_data(as_text=True)


def test_a_link_checkers_head_request_leaves_the_link_unused(app, client, tenant):
    link = make_link(client, tenant.wallet_id)
    path = link["url"].replace("http://localhost", "")
    assert app.test_client().head(path).status_code == 200
    assert open_link(app.test_client(), link).status_code == 303


def test_of_simultaneous_opens_exactly_one_wins(app, client, tenant):
    link = make_link(client, tenant.wallet_id)
    browsers = [app.test_client() for _ in range(8)]
    start = threading.Barrier(len(browsers))
    statuses = []

    def go(browser):
        start.wait()
        statuses.append(open_link(browser, link).status_code)

    threads = [threading.Thread(target=go, args=(browser,)) for browser in browsers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [303] + [410] * 7


def test_a_links_session_ends_within_the_hour(app, client, tenant, database):
    visitor = app.test_client()
    open_link(visitor, make_link(client, tenant.wallet_id))
    assert visitor.get(f"{CONSOLE}/webhooks").status_code == 200
    with database.transaction() as db:
        row = db.scalars(select(ConsoleSession)).one()
        assert row.expires_at - row.created_at == timedelta(hours=1)
        # An hour later:
        db.execute(update(ConsoleSession).values(expires_at=datetime.now(UTC)))
    ended = visitor.get(f"{CONSOLE}/webhooks")
    assert ended.status_code == 401 and "expired" in ended.get_data(as_text=True)
    assert "frame-ancestors https://portal.example.com" in ended.headers["Content-Security-Policy"]


def test_a_sign_in_ends_at_a_fixed_time_however_busy(client, tenant, database):
    sign_in(client, "tenant", tenant.api_key)
    with database.transaction() as db:
        row = db.scalars(select(ConsoleSession)).one()
        assert row.expires_at - row.created_at == timedelta(hours=12)
    for _ in range(3):
        client.get(f"{CONSOLE}/webhooks")
    with database.session() as db:
        assert db.scalars(select(ConsoleSession.expires_at)).one() == row.expires_at


def test_sign_out_ends_every_copy_of_the_cookie(app, client, tenant):
    sign_in(client, "tenant", tenant.api_key)
    copied = client.get_cookie("console_session", path=CONSOLE).value
    client.post(f"{CONSOLE}/sign-out", data={"csrf": csrf_of(client.get(f"{CONSOLE}/webhooks"))})
    thief = app.test_client()
    thief.set_cookie("console_session", copied, path=CONSOLE)
    page = thief.get(f"{CONSOLE}/webhooks", follow_redirects=True)
    assert "Sign in" in page.get_data(as_text=True) and "ended" in page.get_data(as_text=True)

    visitor = app.test_client()
    open_link(visitor, make_link(client, tenant.wallet_id))
    copied = visitor.get_cookie("console_link_session", path=CONSOLE).value
    out = visitor.post(
        f"{CONSOLE}/sign-out", data={"csrf": csrf_of(visitor.get(f"{CONSOLE}/webhooks"))}
    )
    assert "signed out" in out.get_data(as_text=True)
    thief = app.test_client()
    thief.set_cookie("console_link_session", copied, path=CONSOLE)
    assert thief.get(f"{CONSOLE}/webhooks").status_code == 401


def test_a_cookie_made_from_the_database_is_refused(app, client, tenant, database):
    """Everything a dump holds: the salt, the key hashes, the sessions' hashes. Cookies signed
    with keys derived from them, holding any of them, open nothing and change nothing."""
    sign_in(app.test_client(), "tenant", tenant.api_key)
    with database.session() as db:
        salt = db.get(SystemValue, "api_key_salt").value
        key_hashes = db.scalars(select(ApiKey.key_hash)).all()
        session_hashes = db.scalars(select(ConsoleSession.token_hash)).all()
    derived = hmac.new(salt.encode(), b"cloud-agent-webhooks console", hashlib.sha256).digest()
    keys = [derived, salt, *key_hashes, *session_hashes]
    contents = [{"who": {"tenant": key_hash}} for key_hash in key_hashes]
    contents += [{"sid": value} for value in session_hashes + key_hashes + [salt]]
    for key in keys:
        for content in contents:
            forged = URLSafeTimedSerializer(key, salt="console-session").dumps(
                {**content, "csrf": "forged-csrf"}
            )
            for name in ("console_session", "console_link_session"):
                attacker = app.test_client()
                attacker.set_cookie(name, forged, path=CONSOLE)
                page = attacker.get(f"{CONSOLE}/webhooks")
                assert page.status_code in (302, 401), (key, content, name)
                posted = attacker.post(
                    f"{CONSOLE}/webhooks",
                    data={"url": "http://evil.example/x", "csrf": "forged-csrf"},
                )
                assert posted.status_code == 403
    assert client.get("/cloud-agent/events/webhooks", headers=tenant.headers).json["contents"] == []


def test_the_purge_forgets_ended_sessions_and_spent_links(app, client, tenant, database, settings):
    visitor = app.test_client()
    open_link(visitor, make_link(client, tenant.wallet_id))
    sign_in(client, "tenant", tenant.api_key)
    day_ago = datetime.now(UTC) - timedelta(days=1, seconds=1)
    with database.transaction() as db:
        db.execute(update(ConsoleLink).values(expires_at=day_ago))
        db.execute(
            update(ConsoleSession).where(ConsoleSession.access == "link").values(expires_at=day_ago)
        )
    purge(database, settings)
    with database.session() as db:
        assert db.scalars(select(ConsoleLink)).all() == []
        assert db.scalars(select(ConsoleSession.access)).all() == ["tenant"]
    assert client.get(f"{CONSOLE}/webhooks").status_code == 200


def test_a_changed_admin_token_ends_the_operators_session(base_env, client):
    sign_in(client, "admin", ADMIN_TOKEN)
    assert client.get(f"{CONSOLE}/overview").status_code == 200
    changed = load_settings({**base_env, "ADMIN_TOKEN": "another-admin-token-0123456789"})
    other = create_app(changed, dispatch=lambda deliveries: None).test_client()
    other.set_cookie(
        "console_session", client.get_cookie("console_session", path=CONSOLE).value, path=CONSOLE
    )
    ended = other.get(f"{CONSOLE}/overview", follow_redirects=True)
    assert "The admin token has changed" in ended.get_data(as_text=True)
