"""Ways in and out of the console: sign-in with a key or the admin token, a link the operator
made for one wallet, and sign-out (which ends the session on the server)."""

from __future__ import annotations

from flask import g, redirect, render_template, request, url_for

from app.console import session
from app.console.blueprint import bp, ended
from app.state import state
from shared.services import console_access
from shared.timeutil import utcnow


@bp.get("/")
def home():
    if g.viewer is None:
        if g.console.via_link:
            return ended("Your session has ended.")
        return redirect(url_for("console.sign_in"))
    return redirect(url_for("console.overview_page" if g.viewer.admin else "console.webhook_list"))


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in():
    error = None
    if request.method == "POST":
        kind = "admin" if request.form.get("kind") == "admin" else "tenant"
        access, error = session.credentials_for(kind, request.form.get("secret", ""))
        if access is not None:
            session.end(g.console)  # whatever session this browser had is over
            g.console.sign_in(session.start(access[0], credential=access[1]))
            return redirect(url_for("console.home"), 303)
    # The sign-in form is never framed, even for a browser that holds a link's session.
    g.frameable = False
    notice = g.console.pop_notice()
    status = 401 if error else 200
    return render_template("console/sign_in.html", error=error, notice=notice), status


@bp.get("/links/open")
def open_link():
    """A link from `POST /console/links`: used up here, it signs this browser in to its wallet
    (the token is in the query string, which the access log leaves out)."""
    g.frameable = True
    if request.method == "HEAD":
        return "", 200  # a link checker's look does not use the link up
    try:
        with state().db.transaction() as db:
            token = console_access.open_link(db, request.args.get("token", ""), utcnow())
    except console_access.LinkRefused as exc:
        return ended(exc.detail, exc.status, "This link cannot be opened")
    session.end(g.console)
    g.console.sign_in(token, via_link=True)
    return redirect(url_for("console.webhook_list"), 303)


@bp.post("/sign-out")
def sign_out():
    session.end(g.console)
    g.console.sign_out()
    if g.console.via_link:
        return ended("You are signed out. Open the console again from where you came.", 200)
    g.console.notice("info", "Signed out.")
    return redirect(url_for("console.sign_in"), 303)
