"""The buyers' and analysts' pages: find a lot, a lot's live passport, the delay dashboard,
and the JSON they fetch.

Pages (shells, no ledger data: :func:`.pages.render`): ``/find``, ``/lots/{lot}``,
``/dashboard``. The JSON their scripts fetch with the token:

- ``GET /api/find?q=``: :func:`lottrace.search.find_lots`, cut to the lots the
  caller may see (a buyer: its exports and their upstream);
- ``GET /api/lots/{lot}/card``: :func:`lottrace.passport.passport_data` with
  the plots' SVG map (their geometry is not repeated in ``plots``; each
  certification lists at most :data:`BREAKING_SHOWN` breaking harvests), the
  QR code (SVG) and the URL it encodes; 404 for a lot
  the caller may not see, the same answer as for a lot that does not exist;
- ``GET /api/dashboard``: :func:`lottrace.dashboard.dashboard` with its SVG
  charts, filtered by ``season``, ``coop``, ``route`` (``FROM>TO``), ``since``
  and ``until``; ``GET /api/dashboard/{chart}.csv``: one chart's rows as CSV.
  The owner's analysts, qc and admins only, as the server's delay routes.

Slow whole-ledger answers are kept per ledger head (:mod:`lottrace.memo`).
The pages' words are in :data:`WORDS`, added to the one catalogue
(:data:`.i18n.CATALOGUE`) when this module is imported.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from ..access import Identity, visible_lots
from ..compliance import REASONS_ES, reason_code
from ..dashboard import CHARTS, Filters, dashboard, svg, to_csv
from ..errors import InvalidInput, UnknownLot
from ..ledger import Ledger
from ..memo import ANSWERS
from ..rules import time_key
from ..search import find_lots
from .deps import AnsweredInThread, User, access_of, check_lot, need_analyst, reading
from .i18n import CATALOGUE, pick_lang
from .pages import render

__all__ = ["WORDS", "router"]

WORDS: dict[str, dict[str, str]] = {
    "es": {
        "find.title": "Buscar un lote",
        "find.label": "Código de lote, productor o contenedor",
        "find.hint": "Por ejemplo EXP-25-JUM-01, APR-0502 o MSKU5930284.",
        "find.submit": "Buscar",
        "find.none": "Ningún lote que usted pueda ver coincide con «{q}».",
        "find.count": "{n} lote(s) encontrados.",
        "find.more": "Hay más: escriba algo más preciso.",
        "find.lot": "Lote",
        "find.matched": "Coincide por",
        "find.stage": "Etapa",
        "find.kg": "kg",
        "find.by.lot": "código",
        "find.by.producer": "productor {by}",
        "find.by.container": "contenedor {by}",
        "lot.title": "Pasaporte del lote",
        "lot.loading": "Cargando el pasaporte…",
        "lot.missing": "No hay un lote {lot} que usted pueda ver.",
        "lot.summary": "Resumen",
        "lot.kg": "Peso (kg)",
        "lot.stage": "Etapa",
        "lot.exports": "Exportaciones",
        "lot.container": "Contenedor",
        "lot.destination": "Destino",
        "lot.buyer": "Comprador",
        "lot.producers": "Productores",
        "lot.producer": "Productor",
        "lot.share": "Parte",
        "lot.women": "Mujer productora",
        "lot.plots": "Parcelas en el mapa",
        "lot.harvests": "Cosechas: variedad, proceso, altitud",
        "lot.variety": "Variedad",
        "lot.process": "Proceso",
        "lot.altitude": "Altitud (m)",
        "lot.plot": "Parcela",
        "lot.qc": "Control de calidad",
        "lot.result": "Resultado",
        "lot.moisture": "Humedad %",
        "lot.score": "Puntaje",
        "lot.site": "Sitio",
        "lot.time": "Fecha",
        "lot.certs": "Certificaciones",
        "lot.scheme": "Esquema",
        "lot.certified": "Certificado",
        "lot.yes": "sí",
        "lot.no": "no",
        "lot.why": "Por qué no",
        "lot.route": "Ruta y tiempos",
        "lot.step": "Paso",
        "lot.hours": "Horas desde el paso anterior",
        "lot.total": "Total: {h} horas",
        "lot.eudr": "EUDR: geolocalización",
        "lot.eudr_ok": "Las {n} parcelas tienen geolocalización válida para TRACES.",
        "lot.eudr_bad": "{n} problema(s): el lote no se puede probar conforme.",
        "lot.geojson": "Descargar el GeoJSON (EUDR)",
        "lot.qr": "Código QR del pasaporte",
        "lot.head": "Cabeza del registro",
        "dash.title": "Tablero de demoras",
        "dash.filters": "Filtros",
        "dash.season": "Temporada",
        "dash.coop": "Cooperativa",
        "dash.route": "Ruta",
        "dash.since": "Desde",
        "dash.until": "Hasta",
        "dash.all": "Todas",
        "dash.apply": "Aplicar",
        "dash.loading": "Cargando…",
        "dash.legs": "{n} tramos con estos filtros.",
        "dash.delays": "Demora por ruta y mes",
        "dash.bottlenecks": "Cuellos de botella",
        "dash.stuck": "Lotes detenidos",
        "dash.stuck_count": "{shown} de {n} lotes detenidos.",
        "dash.map": "Mapa de sitios y rutas",
        "dash.unplaced": "{n} sitio(s) sin coordenadas en los datos maestros no se dibujan: {sites}",
        "dash.csv": "Descargar CSV: {chart}",
        "dash.lot": "Lote",
        "dash.stage": "Etapa",
        "dash.site": "Sitio",
        "dash.age": "Edad (h)",
        "dash.over": "Sobre p90 (h)",
        "dash.next": "Siguiente",
        "dash.kg": "kg",
    },
    "en": {
        "find.title": "Find a lot",
        "find.label": "Lot code, producer or container",
        "find.hint": "For example EXP-25-JUM-01, APR-0502 or MSKU5930284.",
        "find.submit": "Find",
        "find.none": "No lot you may see matches “{q}”.",
        "find.count": "{n} lot(s) found.",
        "find.more": "There are more: type something more precise.",
        "find.lot": "Lot",
        "find.matched": "Matched by",
        "find.stage": "Stage",
        "find.kg": "kg",
        "find.by.lot": "code",
        "find.by.producer": "producer {by}",
        "find.by.container": "container {by}",
        "lot.title": "Lot passport",
        "lot.loading": "Loading the passport…",
        "lot.missing": "There is no lot {lot} you may see.",
        "lot.summary": "Summary",
        "lot.kg": "Weight (kg)",
        "lot.stage": "Stage",
        "lot.exports": "Exports",
        "lot.container": "Container",
        "lot.destination": "Destination",
        "lot.buyer": "Buyer",
        "lot.producers": "Producers",
        "lot.producer": "Producer",
        "lot.share": "Share",
        "lot.women": "Woman producer",
        "lot.plots": "Plots on the map",
        "lot.harvests": "Harvests: variety, process, altitude",
        "lot.variety": "Variety",
        "lot.process": "Process",
        "lot.altitude": "Altitude (m)",
        "lot.plot": "Plot",
        "lot.qc": "Quality control",
        "lot.result": "Result",
        "lot.moisture": "Moisture %",
        "lot.score": "Score",
        "lot.site": "Site",
        "lot.time": "Date",
        "lot.certs": "Certifications",
        "lot.scheme": "Scheme",
        "lot.certified": "Certified",
        "lot.yes": "yes",
        "lot.no": "no",
        "lot.why": "Why not",
        "lot.route": "Route and times",
        "lot.step": "Step",
        "lot.hours": "Hours since the step before",
        "lot.total": "Total: {h} hours",
        "lot.eudr": "EUDR: geolocation",
        "lot.eudr_ok": "All {n} plots have a geolocation TRACES accepts.",
        "lot.eudr_bad": "{n} problem(s): the lot cannot be proven compliant.",
        "lot.geojson": "Download the GeoJSON (EUDR)",
        "lot.qr": "The passport's QR code",
        "lot.head": "Ledger head",
        "dash.title": "Delay dashboard",
        "dash.filters": "Filters",
        "dash.season": "Season",
        "dash.coop": "Cooperative",
        "dash.route": "Route",
        "dash.since": "From",
        "dash.until": "Until",
        "dash.all": "All",
        "dash.apply": "Apply",
        "dash.loading": "Loading…",
        "dash.legs": "{n} legs with these filters.",
        "dash.delays": "Delay by route and month",
        "dash.bottlenecks": "Bottlenecks",
        "dash.stuck": "Stuck lots",
        "dash.stuck_count": "{shown} of {n} stuck lots.",
        "dash.map": "Map of sites and routes",
        "dash.unplaced": "{n} site(s) without coordinates in master data are not drawn: {sites}",
        "dash.csv": "Download CSV: {chart}",
        "dash.lot": "Lot",
        "dash.stage": "Stage",
        "dash.site": "Site",
        "dash.age": "Age (h)",
        "dash.over": "Over p90 (h)",
        "dash.next": "Next",
        "dash.kg": "kg",
    },
}

for _lang, _words in WORDS.items():  # one catalogue: these keys are this module's own
    assert not set(_words) & set(CATALOGUE[_lang]), "a key of WORDS is in the catalogue"
    CATALOGUE[_lang].update(_words)

router = APIRouter()
pages = APIRouter(include_in_schema=False, route_class=AnsweredInThread)
api = APIRouter(tags=["web"], route_class=AnsweredInThread)

# --------------------------------------------------------------------------- pages


@pages.get("/find", response_class=HTMLResponse)
def find_page(request: Request) -> HTMLResponse:
    return render(
        request, "find.html", title="find.title", script="find.js", js_prefixes=("find.",)
    )


@pages.get("/lots/{lot:lot}", response_class=HTMLResponse)
def lot_page(request: Request, lot: str) -> HTMLResponse:
    """The shell only: the lot code is in the URL, the passport is fetched by the script."""
    return render(request, "lot.html", title="lot.title", script="lot.js", js_prefixes=("lot.",))


@pages.get("/dashboard", response_class=HTMLResponse)
def dashboard_page(request: Request) -> HTMLResponse:
    return render(
        request,
        "dashboard.html",
        title="dash.title",
        script="dashboard.js",
        js_prefixes=("dash.",),
    )


# --------------------------------------------------------------------------- API


def _visible(request: Request, user: Identity) -> set[str] | None:
    """The lots ``user`` may see, kept per ledger head and organisation."""
    access = access_of(request)
    with reading(request) as ledger:
        # what an organisation sees also follows its sites in the access file, which an
        # append does not touch: they are part of the key
        # the access file's version (not only this organisation's sites): a site taken back,
        # a user's organisation or role changed, all count at once
        key = (ledger.head(), "visible", user.org, user.role, user.owner, access.version())
        return ANSWERS.get_or_make(key, lambda: visible_lots(ledger, user, access))


@api.get("/api/find", summary="Lots by code, producer or container, among those the caller sees")
def api_find(
    request: Request,
    user: User,
    q: Annotated[str, Query(max_length=200)] = "",
) -> dict[str, Any]:
    visible = _visible(request, user)
    with reading(request) as ledger:
        return find_lots(ledger, q, visible=visible)


#: The lot page's plot map, in its own units (font 11): narrower than the passport's, so that
#: on a 390 px phone it fits the page at about the passport's type size, without scrolling.
CARD_MAP_SIZE = (400.0, 340.0)
#: Per certification, at most this many breaking harvests are listed (``breaking_total``: all).
BREAKING_SHOWN = 20
_WORDS = "harvest drying gatherer_qc hq_qc dry_mill export dispatch arrival accepted rejected hold"


@api.get("/api/lots/{lot:lot}/card", summary="What a lot's live passport page shows (JSON)")
def api_card(request: Request, lot: str, user: User) -> dict[str, Any]:
    visible = _visible(request, user)
    base = (request.app.state.public_url or str(request.base_url)).rstrip("/")
    lang = pick_lang(request.query_params.get("lang"), request.cookies.get("lang"))
    with reading(request) as ledger:
        if visible is not None and lot not in visible:
            # as deps.check_lot answers (from the visible lots kept for this head): the same
            # 404 as for a lot that does not exist
            raise UnknownLot(f"no lot {lot!r}")
        if visible is None:
            check_lot(ledger, user, lot, access_of(request))
        key = (ledger.head(), "card", lot, lang, base)
        card = ANSWERS.get_or_make(key, lambda: _card(ledger, lot, lang, base))
    return card if visible is None else _only_visible_problems(card, visible)


def _only_visible_problems(card: dict[str, Any], visible: set[str]) -> dict[str, Any]:
    """The card as one caller may read it: an EUDR problem about a lot the caller may not
    see is told without its lot, producer or plot (the card is kept for every caller)."""
    problems = []
    for p in card["eudr_problems"]:
        if p["lot"] in visible:
            problems.append(p)
        else:
            problems.append(
                {
                    "lot": None,
                    "producer": None,
                    "plot_id": None,
                    "problem": p["problem"],
                    "message": "a lot upstream cannot be proven EUDR-compliant",
                }
            )
    return card | {"eudr_problems": problems}


def _card(ledger: Ledger, lot: str, lang: str, base: str) -> dict[str, Any]:
    from ..passport import STRINGS, passport_data, plot_map_svg

    data = passport_data(ledger, lot)
    # its EUDR section is GET /api/lots/{lot}/eudr's verdict (dds.lot_proof, in passport_data)
    url = f"{base}/lot/{quote(lot, safe='')}"
    women = {x for s in data["shares"] for x in s["women_lots"]}
    t = STRINGS[lang]
    plots = [p for p in data["plots"] if p.get("geometry")]
    labels = (t["map_women"], t["map_other"])
    map_svg = (
        plot_map_svg(plots, women=women, labels=labels, lang=lang, size=CARD_MAP_SIZE)
        if plots
        else None
    )
    # the plots' outlines are drawn in map_svg: not sent twice (an export lot has hundreds)
    bare = [{k: v for k, v in p.items() if k != "geometry"} for p in data["plots"]]
    certs = [
        c
        | {
            "breaking": [_reason_said(b, lang) for b in c["breaking"][:BREAKING_SHOWN]],
            "breaking_total": len(c["breaking"]),
        }
        for c in data["certifications"]
    ]
    return data | {
        "plots": bare,
        "certifications": certs,
        "url": url,
        "map_svg": map_svg,
        "qr_svg": _qr(url),
        "words": {k: t[k] for k in _WORDS.split() if k in t},  # stages, QC results
    }


#: Reasons that are their code's whole words: said in Spanish alone, nothing to add.
_BARE_REASONS = frozenset({"not certified", "unknown origin"})


def _reason_said(b: dict[str, Any], lang: str) -> dict[str, Any]:
    """A breaking harvest with its ``reason_code`` (:data:`lottrace.compliance.REASONS`) and,
    in Spanish, its reason in Spanish first, then the particulars (certificate, date) after."""
    reason = str(b["reason"])
    code = reason_code(reason)
    if lang == "es" and code is not None:
        spanish = REASONS_ES[code]
        reason = spanish if reason in _BARE_REASONS else f"{spanish} ({reason})"
    return b | {"reason": reason, "reason_code": code}


def _qr(url: str) -> str:
    import segno

    code: str = segno.make(url, error="m", micro=False).svg_inline(
        scale=4, border=2, dark="#1f1a17", title="QR"
    )
    return code


def _filters(
    season: str | None, coop: str | None, route: str | None, since: str | None, until: str | None
) -> Filters:
    if season is not None and not (len(season) == 4 and season.isdigit()):
        raise InvalidInput(f"season: {season!r} is not a year like 2025")
    pair: tuple[str, str] | None = None
    if route:
        a, sep, b = route.partition(">")
        if not sep or not a or not b:
            raise InvalidInput(f"route: {route!r} is not FROM_SITE>TO_SITE")
        pair = (a, b)
    return Filters(
        season=season or None,
        coop=coop or None,
        route=pair,
        since=_key(since, "since"),
        until=_key(until, "until"),
    )


def _key(value: str | None, name: str) -> str | None:
    from ..delays import window_bound

    return time_key(window_bound(value, name)) if value else None


_Season = Annotated[str | None, Query(max_length=4)]
_Text = Annotated[str | None, Query(max_length=500)]


@api.get("/api/dashboard", summary="The delay dashboard's data and its SVG charts")
def api_dashboard(
    request: Request,
    user: User,
    season: _Season = None,
    coop: _Text = None,
    route: _Text = None,
    since: _Text = None,
    until: _Text = None,
) -> dict[str, Any]:
    need_analyst(user)
    f = _filters(season, coop, route, since, until)
    lang = "en" if request.cookies.get("lang") == "en" else "es"
    with reading(request) as ledger:
        answer = dashboard(ledger, f)
        drawn = ANSWERS.get_or_make(
            (ledger.head(), "dashboard-svg", f.key(), lang),
            lambda: {c: svg(answer, c, lang) for c in ("delays", "bottlenecks", "map")},
        )
    return answer | {"svg": drawn}


@api.get(
    "/api/dashboard/{chart}.csv",
    summary="One dashboard chart's rows as CSV (the same filters as /api/dashboard)",
    response_class=Response,
)
def api_dashboard_csv(
    request: Request,
    chart: str,
    user: User,
    season: _Season = None,
    coop: _Text = None,
    route: _Text = None,
    since: _Text = None,
    until: _Text = None,
) -> Response:
    need_analyst(user)
    if chart not in CHARTS:
        raise InvalidInput(f"chart: {chart!r} is not one of {', '.join(CHARTS)}")
    f = _filters(season, coop, route, since, until)
    with reading(request) as ledger:
        text = to_csv(dashboard(ledger, f), chart)
    return Response(
        text.encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="lottrace-{chart}.csv"'},
    )


router.include_router(pages)
router.include_router(api)
