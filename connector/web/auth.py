"""Who may open the dashboard: supervisors with an account, or a reverse proxy's SSO header.

- Accounts are created by an admin (`yorisoi user create NAME`); passwords are stored as
  werkzeug's scrypt hashes (memory-hard, salted, and already a Flask dependency, so nothing
  with a C build is added; the hash string names its method, so a later switch to argon2 can
  verify old hashes and rehash at the next login).
- The session is Flask's signed cookie: HttpOnly, SameSite=Lax, Secure when the request came
  over https (directly or per X-Forwarded-Proto from the proxy), 12 hours.
- Every POST of the dashboard and of this login blueprint carries a CSRF token bound to the
  session. The token is checked per blueprint, not app-wide: the inbound webhooks
  (/sources/webhook, /freshdesk/webhook, the Zendesk Channel framework) authenticate each
  request by signature or shared secret, carry no cookie and so cannot be forged this way.
- With YORISOI_SSO_HEADER set (e.g. X-Forwarded-User) the named header is trusted as the
  user's name; only set it when the connector is reachable through that proxy alone, since
  anyone who can reach it directly could send the header themselves.
- Failed logins are limited per client address and per account name.
"""
from __future__ import annotations

import secrets
import threading
import time
from collections import defaultdict, deque
from datetime import timedelta
from typing import Any

from flask import (Blueprint, Flask, Response, abort, current_app, g, redirect, render_template, request,
                   session, url_for)
from flask.sessions import SecureCookieSessionInterface
from werkzeug.security import check_password_hash, generate_password_hash

from connector.services import services

bp = Blueprint("auth", __name__)

SSO_ENV = "YORISOI_SSO_HEADER"
SESSION_HOURS = 12
#: At most this many failed logins per address (and per account name) within the window.
MAX_FAILURES = 5
FAILURE_WINDOW_SECONDS = 15 * 60
MIN_PASSWORD_LENGTH = 12
#: scrypt with werkzeug's default cost (n=2**15, r=8, p=1): about 50 ms per check here.
HASH_METHOD = "scrypt"


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=HASH_METHOD)


def generate_password() -> str:
    """A random password to hand out once (about 120 bits)."""
    return secrets.token_urlsafe(15)


def check_password_strength(password: str) -> str | None:
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"the password needs at least {MIN_PASSWORD_LENGTH} characters"
    return None


#: Checked when the name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = generate_password_hash("not a password of anyone", method=HASH_METHOD)


class LoginThrottle:
    """Failed logins per key in a sliding window (in memory, per process)."""

    def __init__(self, limit: int = MAX_FAILURES, window: float = FAILURE_WINDOW_SECONDS) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _prune(self, key: str, now: float) -> deque[float]:
        failures = self._failures[key]
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        return failures

    def retry_after(self, *keys: str) -> int:
        """Seconds until another attempt is allowed (0: allowed now)."""
        now = time.monotonic()
        with self._lock:
            waits = [self._prune(k, now)[0] + self.window - now for k in keys
                     if len(self._prune(k, now)) >= self.limit]
        return int(max(waits)) + 1 if waits else 0

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in keys:
                self._prune(key, now).append(now)

    def succeeded(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)


class _SessionInterface(SecureCookieSessionInterface):
    """Secure cookies when served over https, also behind a TLS-terminating proxy."""

    def get_cookie_secure(self, app: Flask) -> bool:  # type: ignore[override]
        if app.config.get("SESSION_COOKIE_SECURE"):
            return True
        try:
            return request.is_secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"
        except RuntimeError:  # outside a request
            return False


def init_app(app: Flask) -> None:
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_NAME="yorisoi_session",
                      PERMANENT_SESSION_LIFETIME=timedelta(hours=SESSION_HOURS))
    app.session_interface = _SessionInterface()
    app.extensions["yorisoi_login_throttle"] = LoginThrottle()
    app.jinja_env.globals.update(csrf_token=csrf_token)
    app.register_blueprint(bp)


# --- CSRF ---------------------------------------------------------------------------------
def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    """Refuse a state-changing request whose token does not match the session's."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    expected = session.get("csrf") or ""
    if not expected or not secrets.compare_digest(sent.encode(), expected.encode()):
        abort(Response("CSRF token missing or wrong: reload the page and try again. / "
                       "CSRFトークンが無いか誤っています。ページを再読み込みしてください。", status=400,
                       mimetype="text/plain"))


# --- who is this ---------------------------------------------------------------------------
def sso_header() -> str | None:
    return (services().settings.env.get(SSO_ENV) or "").strip() or None


def current_user() -> str | None:
    header = sso_header()
    if header:
        name = (request.headers.get(header) or "").strip()
        if name and len(name) <= 200:
            return name
    return session.get("user")


def require_login() -> Any:
    """before_request of the dashboard: a login page for strangers, CSRF for POSTs."""
    user = current_user()
    if user is None:
        if request.method != "GET" or request.path.endswith(".csv"):
            abort(401)
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    g.user = user
    g.sso = sso_header() is not None and session.get("user") != user
    check_csrf()
    return None


def _safe_next(target: str | None) -> str:
    # Only paths on this site: "//evil.example" or "https://…" would be an open redirect.
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("dashboard.today")


@bp.route("/login", methods=["GET", "POST"])
def login():
    g.user = None
    error = None
    status = 200
    if request.method == "POST":
        check_csrf()
        name = (request.form.get("name") or "").strip()[:100]
        password = request.form.get("password") or ""
        throttle: LoginThrottle = current_app.extensions["yorisoi_login_throttle"]
        keys = (f"addr:{request.remote_addr}", f"user:{name.casefold()}")
        wait = throttle.retry_after(*keys)
        if wait:
            response = Response(render_template("login.html", error="throttled", wait=wait,
                                                next=request.form.get("next", "")), status=429)
            response.headers["Retry-After"] = str(wait)
            return response
        stored = services().store.accounts.user_password_hash(name) if name else None
        if check_password_hash(stored or _DUMMY_HASH, password) and stored is not None:
            throttle.succeeded(*keys)
            session.clear()  # a fresh session (and CSRF token): no fixation of a planted cookie
            session.permanent = True
            session["user"] = name
            services().store.accounts.record_login(name)
            return redirect(_safe_next(request.form.get("next")))
        throttle.failed(*keys)
        error, status = "bad_login", 401
    return render_template("login.html", error=error, wait=0, next=request.values.get("next", "")), status


@bp.post("/logout")
def logout():
    check_csrf()
    session.clear()
    return redirect(url_for("auth.login"))
