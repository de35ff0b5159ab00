"""The web app's page shells: Jinja2 templates rendered with the page's language, no ledger
data in them (each page's script fetches the JSON API with the token kept in the browser).

:func:`render` is how every page of the app is answered (W1's and W2's): the
language from ``?lang=`` or the ``lang`` cookie, the page's own
Content-Security-Policy, and the strings its script needs in a ``data-``
attribute. The routes here are the shell's: ``/login``, the home page (served
at ``/`` to browsers by :mod:`lottrace.server`), ``/field``, ``/upload`` and
the service worker ``/sw.js``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from .. import __version__
from .deps import AnsweredInThread
from .i18n import CATALOGUE, LANGS, pick_lang, strings, t

__all__ = ["CSP_APP", "STATIC", "render", "router", "wants_html"]

HERE = Path(__file__).parent
STATIC = HERE / "static"
#: The app's pages: their own scripts and styles only, nothing inline, nothing from elsewhere.
CSP_APP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; worker-src 'self'; manifest-src 'self'; frame-ancestors 'none'"
)
_LANG_COOKIE_AGE = 365 * 24 * 3600

_env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def wants_html(request: Request) -> bool:
    """Whether a request for ``/`` is a browser's (HTML before JSON in its Accept)."""
    accept = request.headers.get("accept", "")
    html = accept.find("text/html")
    json = accept.find("application/json")
    return html >= 0 and (json < 0 or html < json)


def render(
    request: Request,
    template: str,
    *,
    title: str,
    script: str | None = None,
    js_prefixes: tuple[str, ...] = (),
    auth: bool = True,
    **context: Any,
) -> HTMLResponse:
    """A page: ``template`` (extending ``base.html``) in the request's language.

    ``title`` is a catalogue key; ``script`` the page's own file under
    ``/static/``; ``js_prefixes`` the catalogue keys (by prefix) its script
    reads from ``document.body.dataset.i18n``; ``auth`` whether the page
    sends a visitor without a token to ``/login``.
    """
    asked = request.query_params.get("lang")
    lang = pick_lang(asked, request.cookies.get("lang"))
    words = strings(lang, ("outbox.", "error.", "offline", *js_prefixes))
    other = "en" if lang == "es" else "es"
    html = _env.get_template(template).render(
        lang=lang,
        other_lang=other,
        t=lambda key, **values: t(lang, key, **values),
        title=t(lang, title),
        script=script,
        auth=auth,
        path=request.url.path,
        version=__version__,
        i18n=orjson.dumps(words).decode(),
        **context,
    )
    response = HTMLResponse(html, headers={"Content-Security-Policy": CSP_APP})
    if asked in LANGS:
        response.set_cookie("lang", asked, max_age=_LANG_COOKIE_AGE, samesite="lax")
    return response


router = APIRouter(include_in_schema=False, route_class=AnsweredInThread)


def home(request: Request) -> HTMLResponse:
    """The home page: what the signed-in user can do, by role (``/`` for browsers)."""
    return render(
        request,
        "home.html",
        title="home.title",
        script="home.js",
        js_prefixes=("home.",),
        auth=False,
    )


@router.get("/login", response_class=HTMLResponse)
def login(request: Request) -> HTMLResponse:
    return render(
        request,
        "login.html",
        title="login.title",
        script="login.js",
        js_prefixes=("login.",),
        auth=False,
    )


@router.get("/sw.js")
def service_worker() -> Response:
    """The service worker, at the root so its scope is the whole app."""
    body = (STATIC / "sw.js").read_bytes().replace(b"@VERSION@", __version__.encode())
    return Response(
        body,
        media_type="text/javascript",
        headers={"Content-Security-Policy": CSP_APP, "Cache-Control": "no-cache"},
    )


def _catalogues_match() -> bool:
    """Every message in both languages (checked by the tests)."""
    return set(CATALOGUE["es"]) == set(CATALOGUE["en"])


@router.get("/field", response_class=HTMLResponse)
def field(request: Request) -> HTMLResponse:
    """A form per checkpoint, for a phone, with the outbox for when there is no connection."""
    from .fieldapi import form_specs

    lang = pick_lang(request.query_params.get("lang"), request.cookies.get("lang"))
    return render(
        request,
        "field.html",
        title="field.title",
        script="field.js",
        js_prefixes=("field.",),
        forms=form_specs(lang),
        chosen=request.query_params.get("type", "harvest"),
    )


@router.get("/upload", response_class=HTMLResponse)
def upload(request: Request) -> HTMLResponse:
    """Upload a sheet: its suggested column map, every problem per row, then import."""
    from .fieldapi import form_specs

    lang = pick_lang(request.query_params.get("lang"), request.cookies.get("lang"))
    return render(
        request,
        "upload.html",
        title="upload.title",
        script="upload.js",
        js_prefixes=("upload.", "field.type."),
        forms=form_specs(lang),
    )
