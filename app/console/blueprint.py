"""The console's blueprint and what every page shares: the session, security headers (framing
only for a link's session, from CONSOLE_FRAME_ANCESTORS), error pages, and who may see a
page."""

from __future__ import annotations

import functools
from urllib.parse import urlsplit

from flask import Blueprint, abort, g, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from app.console import present, session
from app.state import state
from shared import __version__
from shared.errors import ServiceError

bp = Blueprint(
    "console", __name__, template_folder="templates", static_folder="static", url_prefix="/console"
)

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors "
)


@bp.before_request
def _load_session():
    if request.endpoint == "console.static":
        return  # stylesheets and scripts need no session
    g.console = session.load()
    g.viewer, why = session.viewer_of(g.console)
    if why:
        g.console.sign_out(why)
    # A link's session may be framed by the operator's product; sign-in and the operator's
    # pages never are.
    g.frameable = g.console.via_link
    if request.method == "POST":
        # Under Referrer-Policy no-referrer browsers send `Origin: null`; the CSRF token and
        # the SameSite cookie are what protect those.
        origin = request.headers.get("Origin")
        if origin and origin != "null" and origin != request.host_url.rstrip("/"):
            abort(403, "This form was sent from another site.")
        if not g.console.csrf_ok(request.form.get("csrf")):
            abort(403, "This form is out of date. Reload the page and try again.")


@bp.after_request
def _secure(response):
    if "console" in g:
        session.save(g.console, response, bp_path())
    ancestors = state().settings.console_frame_ancestors
    if g.get("frameable") and ancestors:
        response.headers["Content-Security-Policy"] = CSP + " ".join(ancestors)
    else:
        response.headers["Content-Security-Policy"] = CSP + "'none'"
        response.headers["X-Frame-Options"] = "DENY"
    response.headers.update({"Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"})
    if not request.path.startswith(bp_path() + "/static/"):
        response.headers["Cache-Control"] = "no-store"
    return response


def bp_path() -> str:
    return state().settings.api_prefix + bp.url_prefix


@bp.app_template_filter("when")
def _when(moment):
    return present.when(moment)


@bp.app_template_filter("counted")
def _counted(count):
    return present.counted(count)


@bp.context_processor
def _common():
    return {
        "viewer": g.get("viewer"),
        "csrf": g.console.csrf if "console" in g else "",
        "version": __version__,
        "docs_url": state().settings.api_prefix + "/docs",
    }


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    return render_template("console/error.html", code=exc.code, message=exc.description), exc.code


@bp.errorhandler(ServiceError)
def _service_error(exc: ServiceError):
    return render_template("console/error.html", code=exc.status, message=exc.detail), exc.status


def ended(message: str, status: int = 401, heading: str = "This console session is over"):
    """The page a link's session ends on, or a refused link: it stays in its frame, and has
    nothing to sign in with (a new link is the way back)."""
    return render_template("console/ended.html", message=message, heading=heading), status


def signed_in(admin: bool | None = None):
    """Only for a signed-in viewer; `admin` True or False: only the operator, only a tenant."""

    def decorate(view):
        @functools.wraps(view)
        def checked(*args, **kwargs):
            if g.viewer is None:
                if g.console.via_link:
                    notice = g.console.pop_notice()
                    return ended(notice[1] if notice else "Your session has ended.")
                return redirect(url_for("console.sign_in"))
            if admin is not None and g.viewer.admin != admin:
                abort(404)
            return view(*args, **kwargs)

        return checked

    return decorate


def back(default: str):
    """To the page the form came from (a console page only), or `default`."""
    target = request.form.get("next", "")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith(bp_path() + "/"):
        target = url_for(default)
    return redirect(target, 303)


def acted(kind: str, text: str, default: str):
    g.console.notice(kind, text)
    return back(default)
