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
- Failed logins are limited per client address (reserved before the password is checked, so
  concurrent guesses cannot slip through; behind YORISOI_TRUSTED_PROXIES the address is taken
  from X-Forwarded-For) and per account name, which never refuses the correct password.
- A session holds its account's session generation; "sign out everywhere", a password reset
  and `yorisoi user delete` bump or remove it, so every older cookie is refused at once.
"""
from __future__ import annotations

import ipaddress
import secrets
import threading
import time
import unicodedata
from collections import defaultdict, deque
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface
from werkzeug.security import check_password_hash, generate_password_hash

from connector.services import services

bp = Blueprint("auth", __name__)

SSO_ENV = "YORISOI_SSO_HEADER"
TRUSTED_PROXIES_ENV = "YORISOI_TRUSTED_PROXIES"
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
    """Failed logins per key in a sliding window (in memory, per process).

    An attempt is *reserved* before the password is checked (`reserve`), atomically, so
    concurrent guesses from one address cannot all pass the check before any is counted.
    The address key refuses at the limit; the account key does not refuse a correct password
    (anyone could otherwise lock a supervisor out by guessing their name): once over the
    limit, a wrong password for the account is answered 429 like a throttled address.
    """

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

    def _wait(self, key: str, now: float) -> int:
        failures = self._prune(key, now)
        if len(failures) < self.limit:
            return 0
        return int(failures[0] + self.window - now) + 1

    def retry_after(self, *keys: str) -> int:
        """Seconds until another attempt is allowed (0: allowed now)."""
        now = time.monotonic()
        with self._lock:
            return max((self._wait(k, now) for k in keys), default=0)

    def reserve(self, address_key: str) -> tuple[int, float]:
        """Count an attempt from `address_key` now, before its password is checked. Returns
        (seconds to wait, 0 if allowed; the reservation to hand to `succeeded`)."""
        now = time.monotonic()
        with self._lock:
            wait = self._wait(address_key, now)
            if wait:
                return wait, 0.0
            self._failures[address_key].append(now)
            return 0, now

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in keys:
                self._prune(key, now).append(now)

    def succeeded(self, address_key: str, reservation: float, *keys: str) -> None:
        """A correct password: the address's reserved attempt is given back and the other
        keys (the account) start afresh."""
        with self._lock:
            failures = self._failures.get(address_key)
            if failures is not None:
                try:
                    failures.remove(reservation)
                except ValueError:
                    pass
            for key in keys:
                self._failures.pop(key, None)


def _trusted_proxies() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    raw = services().settings.env.get(TRUSTED_PROXIES_ENV) or ""
    networks = []
    for part in raw.split(","):
        part = part.strip()
        if part:
            try:
                networks.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                continue
    return networks


def _is_trusted(address: str, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address() -> str:
    """The client's address: the peer's, unless the peer is a trusted proxy; then the nearest
    X-Forwarded-For entry that is not a trusted proxy (entries further left are whatever
    the client chose to send, so they are never believed)."""
    peer = request.remote_addr or ""
    networks = _trusted_proxies()
    if not networks or not _is_trusted(peer, networks):
        return peer
    hops = [h.strip() for h in ",".join(request.headers.getlist("X-Forwarded-For")).split(",") if h.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, networks):
            return hop
    return hops[0] if hops else peer


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
    user = session.get("user")
    if user is None:
        return None
    # The session is valid only under the generation it was issued with: "sign out
    # everywhere", a password reset and `yorisoi user delete` end it on every device.
    generation = services().store.accounts.session_generation(user)
    if generation is None or session.get("gen", 0) != generation:
        session.clear()
        return None
    return str(user)


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


def same_site_path(target: str | None) -> str | None:
    """`target` as a path on this site, or None when it could lead anywhere else.

    Browsers drop tabs and line breaks from a URL and treat a backslash as a slash, so
    "/%09/evil.example/" arrives as "/\t/evil.example/" and is followed as "//evil.example/".
    Control characters (C0, C1, and format characters such as U+200B) and whitespace are
    therefore removed *first*, then only a path starting with one "/" and holding no backslash
    is accepted. The cleaned path is what is returned, so a CR/LF can never reach the
    Location header (Werkzeug refuses it there with a 500)."""
    if not isinstance(target, str):
        return None
    cleaned = "".join(ch for ch in target
                      if not ch.isspace() and unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp"))
    if not cleaned.startswith("/") or cleaned.startswith("//") or "\\" in cleaned:
        return None
    parts = urlsplit(cleaned)
    if parts.scheme or parts.netloc:
        return None
    return cleaned


def _safe_next(target: str | None) -> str:
    # Only paths on this site: "//evil.example" or "https://…" would be an open redirect.
    return same_site_path(target) or url_for("dashboard.today")


def check_credentials(name: str, password: str) -> tuple[bool, int]:
    """Check a dashboard account's password under the login throttle: (correct, seconds to
    wait before another attempt — 0 unless throttled). Shared by the login form and the
    extension's sign-in, so both count against the same limits."""
    throttle: LoginThrottle = current_app.extensions["yorisoi_login_throttle"]
    address_key, account_key = f"addr:{client_address()}", f"user:{name.casefold()}"
    wait, reservation = throttle.reserve(address_key)
    if wait:
        return False, wait
    stored = services().store.accounts.user_password_hash(name) if name else None
    if check_password_hash(stored or _DUMMY_HASH, password) and stored is not None:
        # Others' failures against this account never refuse its correct password.
        throttle.succeeded(address_key, reservation, account_key)
        return True, 0
    account_wait = throttle.retry_after(account_key)
    throttle.failed(account_key)  # the address's attempt was counted by reserve()
    return False, account_wait


@bp.route("/login", methods=["GET", "POST"])
def login():
    g.user = None
    error = None
    status = 200
    if request.method == "POST":
        check_csrf()
        name = (request.form.get("name") or "").strip()[:100]
        password = request.form.get("password") or ""
        ok, wait = check_credentials(name, password)
        if ok:
            session.clear()  # a fresh session (and CSRF token): no fixation of a planted cookie
            session.permanent = True
            session["user"] = name
            session["gen"] = services().store.accounts.session_generation(name) or 0
            services().store.accounts.record_login(name)
            return redirect(_safe_next(request.form.get("next")))
        if wait:
            return _throttled(wait)
        error, status = "bad_login", 401
    return render_template("login.html", error=error, wait=0, next=request.values.get("next", "")), status


def _throttled(wait: int) -> Response:
    response = Response(render_template("login.html", error="throttled", wait=wait,
                                        next=request.form.get("next", "")), status=429)
    response.headers["Retry-After"] = str(wait)
    return response


@bp.post("/logout")
def logout():
    """Sign out; with `everywhere`, every other session of the account ends too."""
    check_csrf()
    user = session.get("user")
    if user and request.form.get("everywhere"):
        services().store.accounts.end_sessions(str(user))
    session.clear()
    return redirect(url_for("auth.login"))
