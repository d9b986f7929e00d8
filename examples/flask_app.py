"""A Flask web app whose users log in with Bastion: `python examples/flask_app.py`.

With `make serve` running in another terminal, open http://127.0.0.1:5000 (127.0.0.1, not
localhost: the demo client's registered redirect URI is http://127.0.0.1:5000/callback, and the
session cookie must come back to the host that set it), press "Log in with Bastion" and sign in
as the demo user `make serve` prints. Needs the Flask extra: `pip install 'bastion[flask]'`.

Settings, from environment variables:

    OIDC_ISSUER          the provider                  http://127.0.0.1:8000
    OIDC_CLIENT_ID       the registered client         demo-client
    OIDC_CLIENT_SECRET   its secret                    the demo's, from $BASTION_VAR_DIR/demo.json
    BASTION_VAR_DIR      where `make serve` keeps it   var
    APP_PORT             port on 127.0.0.1             5000
    FLASK_SECRET_KEY     signs the session cookie      random at each start (sessions end on restart)

The client must have http://127.0.0.1:<APP_PORT>/callback as a redirect URI and
http://127.0.0.1:<APP_PORT>/ as a post-logout redirect URI (the demo client has them for 5000).
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from pathlib import Path

from flask import Flask, render_template_string

from bastion.integrations.flask import OIDCLogin, current_user, login_required, tokens

LAYOUT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }} · Bastion example</title>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem; }
  .button { display: inline-block; padding: .6rem 1.2rem; border: 0; border-radius: .4rem; background: #1d4ed8;
            color: #fff; font: inherit; text-decoration: none; cursor: pointer; }
  table { border-collapse: collapse; } td, th { text-align: left; padding: .2rem 1rem .2rem 0; }
</style></head>
<body><main><h1>{{ title }}</h1>{{ body }}</main></body></html>
"""

HOME = """
{% if user %}
  <p>Signed in as <strong>{{ user.get("name") or user.get("email") or user["sub"] }}</strong>.</p>
  <p><a href="{{ url_for('profile') }}">Your profile</a></p>
  <form method="post" action="{{ url_for('bastion.logout') }}"><button class="button">Log out</button></form>
{% else %}
  <p>You are not signed in.</p>
  <form method="get" action="{{ url_for('bastion.login') }}">
    <input type="hidden" name="next" value="{{ url_for('profile') }}">
    <button class="button">Log in with Bastion</button>
  </form>
{% endif %}
"""

PROFILE = """
<p>Hello, <strong>{{ user.get("name") or user["sub"] }}</strong>
  {% if user.get("email") %}(<span id="email">{{ user["email"] }}</span>){% endif %}.</p>
<table>{% for name, value in user | dictsort %}<tr><th>{{ name }}</th><td>{{ value }}</td></tr>{% endfor %}</table>
{% if expires_in is not none %}<p>The access token (kept on the server, never in a cookie) expires in
  {{ expires_in }} s.</p>{% endif %}
<form method="post" action="{{ url_for('bastion.logout') }}"><button class="button">Log out</button></form>
<p><a href="{{ url_for('home') }}">Home</a></p>
"""


def _page(title: str, body: str, **context: object) -> str:
    return render_template_string(LAYOUT.replace("{{ body }}", body), title=title, **context)  # constants only


def _demo_secret() -> str | None:
    """The demo client's secret, which `make serve` keeps in var/demo.json."""
    var_dir = Path(os.environ.get("BASTION_VAR_DIR") or Path(__file__).resolve().parents[1] / "var")
    try:
        secret = json.loads((var_dir / "demo.json").read_text())["client_secret"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return secret if isinstance(secret, str) else None


def create_app() -> Flask:
    port = int(os.environ.get("APP_PORT", "5000"))
    base = f"http://127.0.0.1:{port}"
    secret = os.environ.get("OIDC_CLIENT_SECRET") or _demo_secret()
    if not secret:
        sys.exit("No client secret: set OIDC_CLIENT_SECRET, or run `make serve` first (it writes var/demo.json).")

    app = Flask(__name__)
    app.secret_key = os.environ.get("FLASK_SECRET_KEY") or secrets.token_hex(32)
    app.config.update(SESSION_COOKIE_SAMESITE="Lax", SESSION_COOKIE_HTTPONLY=True)
    OIDCLogin(app, issuer=os.environ.get("OIDC_ISSUER", "http://127.0.0.1:8000"),
              client_id=os.environ.get("OIDC_CLIENT_ID", "demo-client"), client_secret=secret,
              redirect_uri=f"{base}/callback", post_logout_redirect_uri=f"{base}/")

    @app.get("/")
    def home() -> str:
        return _page("Bastion example", HOME, user=current_user())

    @app.get("/profile")
    @login_required
    def profile() -> str:
        held = tokens()
        expires_in = None if held is None or held.expires_at is None else max(0, int(held.expires_at - time.time()))
        return _page("Your profile", PROFILE, user=current_user(), expires_in=expires_in)

    return app


if __name__ == "__main__":
    create_app().run(host="127.0.0.1", port=int(os.environ.get("APP_PORT", "5000")))
