"""The lot passport: one self-contained HTML page about a lot, for its buyer.

:func:`passport_data` collects what a buyer asks about a lot from the
library's queries (:func:`~lottrace.provenance.upstream`, ``downstream``,
``timeline``, ``eudr``, ``certify``) and the ledger's head hash;
:func:`render_html` turns that into one HTML file. The page has no script,
loads nothing (a Content-Security-Policy forbids it), and carries its CSS,
map and QR code inline, so it can be emailed, printed or hosted anywhere and
opened offline. Every piece of user data on it (lot codes, producers, sites,
notes) is HTML-escaped.

The page says, in Spanish or English (:data:`STRINGS`): the lot and its
export containers; a timeline from the harvests to the port (the lot's
critical path, see :func:`~lottrace.timeline.timeline`); the producers and
their shares, naming women producers' micro-lots where a harvest says
``women_producer: true``; a map of the contributing plots; the QC results;
each certification any contributing harvest claims, with pass or fail for
the whole lot; the EUDR geolocation check; and the ledger's head hash with
the command that verifies it. A QR code encodes the passport's URL when one
is given (``{lot}`` in it is replaced by the lot code).

The map
    An inline SVG, no tiles. Positions are projected equirectangularly
    around the plots' mean latitude φ₀: x = lon · cos φ₀, y = −lat. That keeps
    distances and angles true to within a fraction of a percent over the few
    tens of kilometres a lot's plots span. The drawing is fitted to the
    plots' extent (at least about 500 m across), north is up and a scale bar
    in km is drawn. Polygons are drawn as outlines with a dot at their
    centre, since a few hectares would otherwise be too small to see.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlsplit

from . import __version__
from .certificates import registry as read_registry
from .compliance import certify
from .dds import carry_statements, lot_proof
from .errors import InvalidInput
from .graph import shared_graphs
from .ledger import Ledger
from .masterdata import site_info, sites
from .numfmt import number
from .provenance import downstream, upstream
from .rules import STAGE_NAMES
from .timeline import timeline

__all__ = [
    "LANGS",
    "MAX_MAP_LABELS",
    "STRINGS",
    "passport",
    "passport_data",
    "passport_url",
    "plot_map_svg",
    "render_html",
]

JSON = dict[str, Any]

#: Every string on the page, in each language the page speaks.
STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Lot passport",
        "intro": "Coffee lot {lot}: {kg} kg, last checkpoint {stage}.",
        "exports": "Export and containers",
        "no_export": "This lot has not been exported yet.",
        "date": "Date",
        "container": "Container",
        "bags": "Bags",
        "kg": "kg",
        "vessel": "Vessel",
        "destination": "Destination",
        "buyer": "Buyer",
        "ico_mark": "ICO mark",
        "dds": "EUDR due diligence statement (reference/verification): {numbers}",
        "timeline": "Timeline: from the harvests to the port",
        "harvest_window": "{n} harvests, from {first} to {last}.",
        "critical_path": "The path below follows, at each blend, the input that arrived last.",
        "total": "{days} days from the first step to the last.",
        "after": "+{days} d",
        "lot": "Lot",
        "stage": "Checkpoint",
        "site": "Site",
        "producers": "Producers and their shares",
        "producer": "Producer",
        "share": "Share",
        "harvest_lots": "Harvest lots",
        "women": "Women producer's micro-lot",
        "women_summary": "{pct} of this lot comes from women producers' micro-lots.",
        "unknown_origin": "unknown origin",
        "map": "Where the coffee was grown",
        "map_caption": "{n} plots. Equirectangular projection, north up; "
        "dots are plots given as points, outlines are plot polygons.",
        "map_women": "women producers",
        "map_other": "other producers",
        "no_geometry": "No location recorded for: {plots}.",
        "qc": "Quality control",
        "result": "Result",
        "moisture": "Moisture %",
        "water_activity": "Water activity",
        "defects": "Defects (cat. 1 / cat. 2)",
        "cup_score": "Cup score",
        "yield": "Yield %",
        "no_qc": "No quality control was logged for this lot or its inputs.",
        "certifications": "Certifications",
        "pass": "pass",
        "fail": "fail",
        "cert_all": "all {n} contributing harvests carry it",
        "cert_breaking": "{n} of {total} contributing harvests do not: {lots}",
        "no_certs": "No contributing harvest claims a certification.",
        "eudr": "EU Deforestation Regulation (EUDR) geolocation",
        "eudr_ok": "Every contributing plot is geolocated ({n} plots); none over 4 ha "
        "is given only as a point.",
        "eudr_fail": "The lot cannot be proven compliant:",
        "eudr_no-geometry": "lot {lot}: producer {producer}: plot {plot_id} has no location "
        "(point or polygon)",
        "eudr_point-over-4ha": "lot {lot}: producer {producer}: plot {plot_id} is over 4 ha "
        "but given only as a point; EUDR needs its polygon",
        "eudr_unknown-origin": "lot {lot} was not made from a harvest and has no input lots: "
        "its origin is unknown",
        "ledger": "Verify this passport",
        "head": "Ledger head hash after {seq} events",
        "verify_how": "Anyone holding the cooperative's ledger can check that it still "
        "contains this record:",
        "voided": "{n} corrected event(s) are left out of this page.",
        "qr": "Scan for this passport online",
        "made_by": "Made with lottrace {version} from the cooperative's ledger.",
        "harvest": "Harvest",
        "drying": "Drying",
        "gatherer_qc": "Gatherer QC",
        "hq_qc": "HQ QC",
        "dry_mill": "Dry mill",
        "export": "Export",
        "dispatch": "Dispatched",
        "arrival": "Arrived",
        "accepted": "accepted",
        "rejected": "rejected",
        "hold": "on hold",
    },
    "es": {
        "title": "Pasaporte del lote",
        "intro": "Lote de café {lot}: {kg} kg, último control {stage}.",
        "exports": "Exportación y contenedores",
        "no_export": "Este lote aún no se ha exportado.",
        "date": "Fecha",
        "container": "Contenedor",
        "bags": "Sacos",
        "kg": "kg",
        "vessel": "Buque",
        "destination": "Destino",
        "buyer": "Comprador",
        "ico_mark": "Marca OIC",
        "dds": "Declaración de diligencia debida EUDR (referencia/verificación): {numbers}",
        "timeline": "Cronología: de la cosecha al puerto",
        "harvest_window": "{n} cosechas, del {first} al {last}.",
        "critical_path": "La ruta sigue, en cada mezcla, el lote que llegó último.",
        "total": "{days} días del primer paso al último.",
        "after": "+{days} d",
        "lot": "Lote",
        "stage": "Control",
        "site": "Lugar",
        "producers": "Productores y su participación",
        "producer": "Productor(a)",
        "share": "Participación",
        "harvest_lots": "Lotes de cosecha",
        "women": "Micro-lote de productora",
        "women_summary": "El {pct} de este lote proviene de micro-lotes de productoras.",
        "unknown_origin": "origen desconocido",
        "map": "Dónde se cultivó el café",
        "map_caption": "{n} parcelas. Proyección equirrectangular, norte arriba; "
        "los puntos son parcelas dadas como punto, los contornos son polígonos.",
        "map_women": "productoras",
        "map_other": "otros productores",
        "no_geometry": "Sin ubicación registrada: {plots}.",
        "qc": "Control de calidad",
        "result": "Resultado",
        "moisture": "Humedad %",
        "water_activity": "Actividad de agua",
        "defects": "Defectos (cat. 1 / cat. 2)",
        "cup_score": "Puntaje en taza",
        "yield": "Rendimiento %",
        "no_qc": "No se registró control de calidad para este lote ni sus insumos.",
        "certifications": "Certificaciones",
        "pass": "cumple",
        "fail": "no cumple",
        "cert_all": "las {n} cosechas que lo componen la tienen",
        "cert_breaking": "{n} de {total} cosechas no la tienen: {lots}",
        "no_certs": "Ninguna cosecha del lote declara una certificación.",
        "eudr": "Geolocalización EUDR (Reglamento de la UE sobre deforestación)",
        "eudr_ok": "Todas las parcelas están geolocalizadas ({n} parcelas); ninguna de "
        "más de 4 ha figura solo como punto.",
        "eudr_fail": "No se puede demostrar el cumplimiento del lote:",
        "eudr_no-geometry": "lote {lot}: productor(a) {producer}: la parcela {plot_id} no "
        "tiene ubicación (punto o polígono)",
        "eudr_point-over-4ha": "lote {lot}: productor(a) {producer}: la parcela {plot_id} "
        "tiene más de 4 ha pero figura solo como punto; el EUDR exige su polígono",
        "eudr_unknown-origin": "el lote {lot} no proviene de una cosecha ni tiene lotes de "
        "origen: su origen es desconocido",
        "ledger": "Verifique este pasaporte",
        "head": "Hash de cabecera del registro tras {seq} eventos",
        "verify_how": "Quien tenga el registro de la cooperativa puede comprobar que "
        "aún contiene este estado:",
        "voided": "{n} evento(s) corregido(s) no se muestran en esta página.",
        "qr": "Escanee para ver este pasaporte en línea",
        "made_by": "Hecho con lottrace {version} a partir del registro de la cooperativa.",
        "harvest": "Cosecha",
        "drying": "Secado",
        "gatherer_qc": "Acopio (CC)",
        "hq_qc": "CC en sede",
        "dry_mill": "Planta de trilla",
        "export": "Exportación",
        "dispatch": "Despacho",
        "arrival": "Llegada",
        "accepted": "aceptado",
        "rejected": "rechazado",
        "hold": "retenido",
    },
}
#: The languages a passport can be written in.
LANGS: tuple[str, ...] = tuple(STRINGS)

_SCHEMES = {
    "organic": {"en": "Organic", "es": "Orgánico"},
    "fairtrade": {"en": "Fairtrade", "es": "Comercio justo (Fairtrade)"},
    "rainforest": {"en": "Rainforest Alliance", "es": "Rainforest Alliance"},
    "cafe_femenino": {"en": "Café Femenino", "es": "Café Femenino"},
}


# --------------------------------------------------------------------------- data


def passport_data(ledger: Ledger, lot: str) -> JSON:
    """Everything the passport shows, as plain data.

    Parameters
    ----------
    ledger : Ledger
        An open ledger.
    lot : str
        A lot code in the ledger, typically an export lot.

    Returns
    -------
    dict
        ``lot``, ``kg``, ``stage``; ``exports`` (the export events of `lot`
        itself, as :func:`~lottrace.provenance.downstream` lists them);
        ``harvests``, ``plots``, ``qc`` (from ``upstream``); ``shares``
        (``upstream``'s, each with ``women``: true when a harvest lot of that
        producer is a women producer's micro-lot, and ``women_lots``);
        ``women_share``; ``steps`` and ``total_hours`` (the critical path,
        from ``timeline``); ``certifications`` (scheme, certified, harvests,
        breaking: one per scheme any contributing harvest claims);
        ``eudr_plots`` and ``eudr_problems``; ``head`` (seq, hash) and
        ``voided``; ``sites``: what partners' master data says about the
        sites of the steps and QC results (``{site: {name, latitude,
        longitude}}``, only sites it knows; see ``masterdata.py``).

    Raises
    ------
    UnknownLot
        If `lot` is not in the ledger.

    Examples
    --------
    >>> import os, tempfile
    >>> from lottrace.demo import build_demo
    >>> path = os.path.join(tempfile.mkdtemp(), "demo.db")
    >>> _ = build_demo(path)
    >>> with Ledger(path) as ledger:
    ...     d = passport_data(ledger, "EXP-25-JUM-01")
    >>> [(x["container"], x["destination"]) for x in d["exports"]]
    [('MSKU5930284', 'New York')]
    >>> d["women_share"], [(c["scheme"], c["certified"]) for c in d["certifications"]]
    (1.0, [('cafe_femenino', True), ('fairtrade', True), ('organic', True)])
    >>> d["steps"][0]["stage"], d["steps"][-1]["site"], d["eudr_problems"]
    ('harvest', 'port:PAITA', [])
    """
    with shared_graphs():  # upstream, route, EUDR and each certification: one graph
        return _passport_data(ledger, lot)


def _passport_data(ledger: Ledger, lot: str) -> JSON:
    state = ledger.require_lot(lot)
    up = upstream(ledger, lot)
    down = carry_statements(ledger, downstream(ledger, lot))
    path = timeline(ledger, lot)
    collection, problems = lot_proof(ledger, lot)
    women = {h["lot"] for h in up["harvests"] if h["women_producer"]}
    shares = [
        {**s, "women": bool(women & set(s["lots"])), "women_lots": sorted(women & set(s["lots"]))}
        for s in up["shares"]
    ]
    schemes = sorted({c for h in up["harvests"] for c in h["certifications"]})
    certs = []
    registry = read_registry(ledger) if schemes else None  # one scan of the log for all
    for scheme in schemes:
        answer = certify(ledger, lot, scheme, registry=registry)
        certs.append({k: answer[k] for k in ("scheme", "certified", "harvests", "breaking")})
    seq, head = ledger.head()
    known = sites(ledger)
    site_names: JSON = {}
    for site in [s["site"] for s in path["steps"]] + [q["site"] for q in up["qc"]]:
        info = site_info(known, site)
        if info is not None:
            site_names[site] = {
                "name": info.name,
                "latitude": info.latitude,
                "longitude": info.longitude,
            }
    return {
        "lot": lot,
        "kg": state.kg,
        "stage": STAGE_NAMES.get(state.stage, str(state.stage)),
        "exports": [x for x in down["exports"] if x["lot"] == lot],
        "harvests": up["harvests"],
        "plots": up["plots"],
        "qc": up["qc"],
        "shares": shares,
        "women_share": sum(s["share"] for s in shares if s["women"]),
        "steps": path["steps"],
        "total_hours": path["total_hours"],
        "certifications": certs,
        "eudr_plots": len(collection["features"]),
        "eudr_problems": problems,
        "head": {"seq": seq, "hash": head},
        "voided": sorted(set(up["voided"]) | set(down["voided"])),
        "sites": site_names,
    }


def _site(data: JSON, site: str, lang: str) -> str:
    """A site as the page shows it: its master-data name and coordinates, if known."""
    info = data.get("sites", {}).get(site)
    if not info:
        return _e(site)
    text = _e(site)
    if info["name"]:
        text = _e(info["name"]) + f' <span class="muted">({text})</span>'
    if info["latitude"] is not None and info["longitude"] is not None:
        text += (
            f' <span class="muted">{_e(_num(info["latitude"], 4, lang))}, '
            f"{_e(_num(info['longitude'], 4, lang))}</span>"
        )
    return text


#: The longest passport URL (UTF-8 bytes) that fits a QR code at error level M (version 40: 2,331).
MAX_URL_BYTES = 2000


def passport_url(template: str, lot: str) -> str:
    """The passport's URL: `template` with ``{lot}`` replaced by the URL-quoted lot code.

    >>> passport_url("https://coop.example/pasaportes/{lot}.html", "EXP-25/JUM#1")
    'https://coop.example/pasaportes/EXP-25%2FJUM%231.html'
    >>> passport_url("ftp://x/{lot}", "L1")
    Traceback (most recent call last):
    ...
    lottrace.errors.InvalidInput: --url 'ftp://x/{lot}': the passport URL must start with http:// or https:// and name a host
    """
    url = template.replace("{lot}", quote(lot, safe=""))
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in url):
        raise InvalidInput(
            f"--url {template!r}: the passport URL must start with http:// or https:// "
            "and name a host"
        )
    if len(url.encode()) > MAX_URL_BYTES:
        raise InvalidInput(
            f"--url {template[:60]!r}...: the passport URL is {len(url.encode()):,} bytes; "
            f"a QR code holds at most {MAX_URL_BYTES:,}"
        )
    return url


def passport(
    ledger: Ledger, lot: str, *, lang: str = "en", url: str | None = None, farm_gate: Any = None
) -> str:
    """The passport of `lot` as one HTML document (see :func:`render_html`).

    Payment data never appear in it. ``farm_gate`` (a
    :class:`lottrace.statement.Assumptions`) is the cooperative's choice to
    add one aggregate line: the farm-gate price as a share of the FOB price.
    """
    data = passport_data(ledger, lot)
    if farm_gate is not None:
        from .statement import farm_gate as share

        data["farm_gate"] = share(ledger, lot, farm_gate)
    return render_html(data, lang=lang, url=url)


# --------------------------------------------------------------------------- HTML


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: float | None, digits: int = 1, lang: str = "en") -> str:
    """A number for the page's reader (see :mod:`lottrace.numfmt`); a dash if unknown."""
    if value is None:
        return "–"
    return number(value, digits, lang)


def _pct(share: float, lang: str = "en") -> str:
    """A share as a percentage: one decimal, two under 1 %.

    >>> _pct(0.2880), _pct(0.00123), _pct(1.0), _pct(0.2880, "es")
    ('28.8 %', '0.12 %', '100.0 %', '28,8 %')
    """
    return number(share * 100, 2 if share < 0.01 else 1, lang, trim=False) + " %"


def _day(iso: str) -> str:
    return iso[:10]


def _when(iso: str) -> str:
    return f"{iso[:10]} {iso[11:16]}"


_CSS = """
:root{--ink:#1f1a17;--muted:#6b625b;--line:#e3ddd6;--bg:#faf8f5;--coffee:#6f4e37;
--ok:#1d7a3a;--bad:#b3261e;--warn:#9a6700;--women:#a2366f}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:15px/1.45 system-ui,-apple-system,
"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:980px;margin:0 auto;padding:24px}
header{display:flex;gap:24px;justify-content:space-between;align-items:flex-start;
border-bottom:3px solid var(--coffee);padding-bottom:16px}
h1{margin:0;font-size:15px;letter-spacing:.08em;text-transform:uppercase;color:var(--coffee)}
.lot{font-size:32px;font-weight:700;margin:4px 0;word-break:break-all}
h2{font-size:19px;margin:28px 0 8px;color:var(--coffee)}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:4px 18px 14px;
margin-top:16px}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{color:var(--muted);font-weight:600}
td.n{text-align:right;font-variant-numeric:tabular-nums}
td:first-child{white-space:nowrap}
.muted{color:var(--muted)}.code{white-space:nowrap}
.badge{display:inline-block;border-radius:10px;padding:0 8px;font-size:12px;font-weight:600;
color:#fff;white-space:nowrap}
.pass,.accepted{background:var(--ok)}.fail,.rejected{background:var(--bad)}.hold{background:var(--warn)}
.women{background:var(--women)}
ol.steps{list-style:none;margin:8px 0;padding:0 0 0 14px;border-left:3px solid var(--coffee)}
ol.steps li{position:relative;padding:4px 0 4px 12px}
ol.steps li::before{content:"";position:absolute;left:-22px;top:10px;width:11px;height:11px;
border-radius:50%;background:var(--coffee)}
.hash{font:13px/1.4 ui-monospace,Menlo,Consolas,monospace;word-break:break-all;
background:var(--bg);padding:6px 8px;border-radius:4px}
figure{margin:0}figure.qr{text-align:center;font-size:12px;max-width:200px}
figure.qr a{color:var(--muted);word-break:break-all}
svg.map{width:100%;height:auto;background:#f3efe9;border-radius:6px}
footer{margin:24px 0;color:var(--muted);font-size:13px}
@media print{body{background:#fff}section{break-inside:avoid;border:0;padding:0}}
"""


def render_html(data: JSON, *, lang: str = "en", url: str | None = None) -> str:
    """Render :func:`passport_data`'s answer as one self-contained HTML document.

    Parameters
    ----------
    data : dict
        The answer of :func:`passport_data`.
    lang : {"en", "es"}
        The page's language.
    url : str, optional
        The passport's public URL (already filled in, see
        :func:`passport_url`): encoded in a QR code on the page. Without it the
        page has no QR code.

    Returns
    -------
    str
        The HTML document. All user data in it is escaped.
    """
    if lang not in STRINGS:
        raise InvalidInput(f"--lang {lang!r}: choose one of {', '.join(LANGS)}")
    t = STRINGS[lang]
    lot = data["lot"]
    stage = t.get(data["stage"], data["stage"])
    body = [
        "<header><div>",
        f"<h1>{_e(t['title'])}</h1>",
        f'<p class="lot" id="lot">{_e(lot)}</p>',
        f"<p>{_e(t['intro'].format(lot=lot, kg=_num(data['kg'], 3, lang), stage=stage))}</p>",
        "</div>",
        _qr(url, t) if url else "",
        "</header>",
        _exports(data, t, lang),
        _timeline(data, t, lang),
        _producers(data, t, lang),
        _map_section(data, t, lang),
        _qc(data, t, lang),
        _certifications(data, t, lang),
        _farm_gate(data, lang),
        _eudr(data, t),
        _ledger(data, t),
        f"<footer>{_e(t['made_by'].format(version=__version__))}</footer>",
    ]
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{lang}">\n<head>\n<meta charset="utf-8">\n'
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(t['title'])} {_e(lot)}</title>\n"
        f"<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
        + "\n".join(part for part in body if part)
        + "\n</main>\n</body>\n</html>\n"
    )


def _qr(url: str, t: dict[str, str]) -> str:
    import segno

    code = segno.make(url, error="m", micro=False)
    svg = code.svg_inline(scale=4, border=2, dark="#1f1a17")
    return (
        f'<figure class="qr" id="qr" aria-label="{_e(t["qr"])}">{svg}'
        f'<figcaption>{_e(t["qr"])}<br><a href="{_e(url)}">{_e(url)}</a></figcaption></figure>'
    )


def _table(head: list[str], rows: list[list[str]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    cells = "".join(f"<th>{_e(h)}</th>" for h in head)
    out = [f"<table><thead><tr>{cells}</tr></thead><tbody>"]
    for row in rows:  # cells are already escaped HTML
        out.append(
            "<tr>"
            + "".join(
                f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>"
                for i, c in enumerate(row)
            )
            + "</tr>"
        )
    out.append("</tbody></table>")
    return "".join(out)


def _section(sid: str, title: str, *parts: str) -> str:
    return f'<section id="{sid}"><h2>{_e(title)}</h2>{"".join(parts)}</section>'


def _opt(value: Any) -> str:
    return "–" if value is None else _e(value)


def _exports(data: JSON, t: dict[str, str], lang: str) -> str:
    if not data["exports"]:
        return _section("exports", t["exports"], f"<p>{_e(t['no_export'])}</p>")
    rows = [
        [
            _e(_day(x["time"])),
            _opt(x["container"]),
            _opt(x["bags"]),
            _e(_num(x["kg"], 3, lang)),
            _opt(x["vessel"]),
            _opt(x["destination"]),
            _opt(x["buyer"]),
            _opt(x["ico_mark"]),
        ]
        for x in data["exports"]
    ]
    head = ["date", "container", "bags", "kg", "vessel", "destination", "buyer", "ico_mark"]
    body = _table([t[h] for h in head], rows, {2, 3})
    numbers = sorted({n for x in data["exports"] for n in x.get("statements", [])})
    if numbers:
        body += f"<p>{_e(t['dds'].format(numbers=', '.join(numbers)))}</p>"
    return _section("exports", t["exports"], body)


def _timeline(data: JSON, t: dict[str, str], lang: str) -> str:
    parts = []
    harvests = data["harvests"]
    if harvests:
        days = sorted(_day(h["time"]) for h in harvests)
        parts.append(
            f"<p>{_e(t['harvest_window'].format(n=len(harvests), first=days[0], last=days[-1]))} "
            f"{_e(t['critical_path'])}</p>"
        )
    items = []
    for step in data["steps"]:
        after = (
            f' <span class="muted">{_e(t["after"].format(days=_num(step["hours"] / 24, 1, lang)))}</span>'
            if step["hours"] is not None
            else ""
        )
        items.append(
            f"<li><strong>{_e(t.get(step['stage'], step['stage']))}</strong>{after}<br>"
            f'{_e(_when(step["time"]))} · {_site(data, step["site"], lang)} · <span class="muted">'
            f"{_e(t['lot'])} {_e(step['lot'])}</span></li>"
        )
    parts.append(f'<ol class="steps">{"".join(items)}</ol>')
    parts.append(f"<p>{_e(t['total'].format(days=_num(data['total_hours'] / 24, 1, lang)))}</p>")
    return _section("timeline", t["timeline"], *parts)


def _producers(data: JSON, t: dict[str, str], lang: str) -> str:
    rows = []
    for s in data["shares"]:
        who = _e(s["producer"]) if s["producer"] is not None else _e(t["unknown_origin"])
        lots = ", ".join(
            f'<span class="code">{_e(code)}</span>'
            + (
                f' <span class="badge women">{_e(t["women"])}</span>'
                if code in s["women_lots"]
                else ""
            )
            for code in s["lots"]
        )
        rows.append([who, _e(_pct(s["share"], lang)), _e(_num(s["kg"], 3, lang)), lots])
    parts = [_table([t["producer"], t["share"], t["kg"], t["harvest_lots"]], rows, {1, 2})]
    if data["women_share"] > 0:
        pct = _pct(data["women_share"], lang)
        parts.insert(0, f'<p id="women-share">{_e(t["women_summary"].format(pct=pct))}</p>')
    return _section("producers", t["producers"], *parts)


def _map_section(data: JSON, t: dict[str, str], lang: str) -> str:
    plots = data["plots"]
    women = {code for s in data["shares"] for code in s["women_lots"]}
    located = [p for p in plots if p["geometry"] is not None]
    parts = []
    if located:
        parts.append(
            plot_map_svg(located, women=women, labels=(t["map_women"], t["map_other"]), lang=lang)
        )
        parts.append(f'<p class="muted">{_e(t["map_caption"].format(n=len(located)))}</p>')
    missing = [p for p in plots if p["geometry"] is None]
    if missing:
        names = ", ".join(f"{p['producer']} ({p['plot_id']})" for p in missing)
        parts.append(f"<p>{_e(t['no_geometry'].format(plots=names))}</p>")
    return _section("map", t["map"], *parts)


def _qc(data: JSON, t: dict[str, str], lang: str) -> str:
    if not data["qc"]:
        return _section("qc", t["qc"], f"<p>{_e(t['no_qc'])}</p>")
    rows = []
    for q in data["qc"]:
        result = q["result"]
        badge = f'<span class="badge {_e(result)}">{_e(t.get(result, result))}</span>'
        defects = q["defects"]
        rows.append(
            [
                _e(_day(q["time"])),
                f'<span class="code">{_e(q["lot"])}</span>',
                _e(t.get(q["stage"], q["stage"]))
                + f'<br><span class="muted">{_site(data, q["site"], lang)}</span>',
                badge,
                _e(_num(q["moisture_pct"], 1, lang)),
                _e(_num(q["water_activity"], 2, lang)),
                "–" if defects is None else _e(f"{defects['cat1']} / {defects['cat2']}"),
                _e(_num(q["cup_score"], 2, lang)),
                _e(_num(q["yield_pct"], 1, lang)),
            ]
        )
    head = ["date", "lot", "stage", "result", "moisture", "water_activity", "defects"]
    head += ["cup_score", "yield"]
    return _section("qc", t["qc"], _table([t[h] for h in head], rows, {4, 5, 6, 7, 8}))


def _certifications(data: JSON, t: dict[str, str], lang: str) -> str:
    if not data["certifications"]:
        return _section("certifications", t["certifications"], f"<p>{_e(t['no_certs'])}</p>")
    items = []
    for c in data["certifications"]:
        name = _SCHEMES.get(c["scheme"], {}).get(lang, c["scheme"])
        verdict = "pass" if c["certified"] else "fail"
        if c["certified"]:
            why = t["cert_all"].format(n=c["harvests"])
        else:
            lots = ", ".join(b["lot"] for b in c["breaking"])
            why = t["cert_breaking"].format(n=len(c["breaking"]), total=c["harvests"], lots=lots)
        items.append(
            f'<li data-scheme="{_e(c["scheme"])}"><strong>{_e(name)}</strong> '
            f'<span class="badge {verdict}">{_e(t[verdict])}</span> '
            f'<span class="muted">{_e(why)}</span></li>'
        )
    return _section("certifications", t["certifications"], f"<ul>{''.join(items)}</ul>")


def _farm_gate(data: JSON, lang: str) -> str:
    """The one aggregate money line a cooperative may choose to show (never payments)."""
    fg = data.get("farm_gate")
    if not fg or fg.get("share_pct") is None:
        return ""
    pct = _num(fg["share_pct"], 1, lang)
    text = (
        f"Precio en chacra: {pct} % del precio FOB"
        if lang == "es"
        else f"Farm-gate price: {pct} % of FOB"
    )
    return f'<p class="farm-gate" id="farm-gate">{_e(text)}</p>'


def _eudr(data: JSON, t: dict[str, str]) -> str:
    problems = data["eudr_problems"]
    if not problems:
        verdict = f'<span class="badge pass">{_e(t["pass"])}</span>'
        text = t["eudr_ok"].format(n=data["eudr_plots"])
        return _section("eudr", t["eudr"], f"<p>{verdict} {_e(text)}</p>")
    items = "".join(f"<li>{_e(_problem_text(p, t))}</li>" for p in problems)
    verdict = f'<span class="badge fail">{_e(t["fail"])}</span>'
    return _section("eudr", t["eudr"], f"<p>{verdict} {_e(t['eudr_fail'])}</p><ul>{items}</ul>")


def _problem_text(problem: JSON, t: dict[str, str]) -> str:
    """An EUDR problem in the page's language (the library's English message if unknown)."""
    template = t.get(f"eudr_{problem['problem']}")
    return template.format(**problem) if template else str(problem["message"])


def _ledger(data: JSON, t: dict[str, str]) -> str:
    head = data["head"]
    parts = [
        f"<p>{_e(t['head'].format(seq=head['seq']))}:</p>",
        f'<p class="hash" id="head">{_e(head["hash"])}</p>',
        f"<p>{_e(t['verify_how'])}</p>",
        f'<p class="hash">lottrace verify --expect {_e(head["hash"])}</p>',
    ]
    if data["voided"]:
        parts.append(f'<p class="muted">{_e(t["voided"].format(n=len(data["voided"])))}</p>')
    return _section("ledger", t["ledger"], *parts)


# --------------------------------------------------------------------------- map

_MAP_W, _MAP_H, _MAP_PAD = 640.0, 360.0, 36.0
#: Above this many plots the map names none (a dot's tooltip still does): the names
#: would cover the map, and placing them costs the square of their number.
MAX_MAP_LABELS = 60
#: The least extent drawn, in degrees of latitude (about 550 m), so one plot is not a blow-up.
_MIN_SPAN = 0.005
_KM_PER_DEG = 111.32
_NICE_KM = (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


def plot_map_svg(
    plots: list[JSON],
    *,
    women: set[str] | frozenset[str] = frozenset(),
    labels: tuple[str, str],
    lang: str = "en",
    size: tuple[float, float] = (_MAP_W, _MAP_H),
) -> str:
    """An inline SVG map of plots (``upstream``'s plot rows with a geometry).

    ``size`` is the drawing's width and height in its own units (its viewBox; the font is 11
    of them): the web app's lot page draws a narrower map, to fit a phone without scrolling.
    Every label is placed inside the drawing (:func:`_place_labels`).

    Projected as the module docstring says; a plot whose harvest lots are in
    `women` is drawn in the women producers' colour. `labels` name the two
    colours in the legend. Each dot is named by its producer, up to
    :data:`MAX_MAP_LABELS` plots; every dot has the name as a tooltip.

    >>> svg = plot_map_svg([
    ...     {"producer": "P<1>", "plot_id": "A", "lots": ["H1"],
    ...      "geometry": {"type": "Point", "coordinates": [-79.0, -5.0]}},
    ...     {"producer": "P2", "plot_id": "B", "lots": ["H2"],
    ...      "geometry": {"type": "Polygon", "coordinates": [[[-79.1, -5.1], [-79.09, -5.1],
    ...                   [-79.09, -5.09], [-79.1, -5.1]]]}}], women={"H1"}, labels=("w", "o"))
    >>> svg.startswith('<svg class="map"'), "P&lt;1&gt;" in svg, svg.count("<circle")
    (True, True, 4)
    """
    positions = [p for plot in plots for p in _positions(plot["geometry"])]
    lat0 = sum(p[1] for p in positions) / len(positions)
    k = math.cos(math.radians(lat0))

    def proj(p: list[float]) -> tuple[float, float]:
        return p[0] * k, -p[1]

    xs = [proj(p)[0] for p in positions]
    ys = [proj(p)[1] for p in positions]
    span_x = max(max(xs) - min(xs), _MIN_SPAN)
    span_y = max(max(ys) - min(ys), _MIN_SPAN)
    width, height = size
    scale = min((width - 2 * _MAP_PAD) / span_x, (height - 2 * _MAP_PAD) / span_y)
    cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2

    def xy(p: list[float]) -> tuple[float, float]:
        x, y = proj(p)
        return width / 2 + (x - cx) * scale, height / 2 + (y - cy) * scale

    out = [
        f'<svg class="map" id="plot-map" viewBox="0 0 {width:g} {height:g}" '
        'xmlns="http://www.w3.org/2000/svg" role="img" font-size="11" '
        'font-family="system-ui,sans-serif">'
    ]
    dots: list[tuple[float, float, str]] = []
    for plot in sorted(plots, key=lambda p: (p["producer"], p["plot_id"])):
        geometry = plot["geometry"]
        colour = "#a2366f" if women & set(plot["lots"]) else "#6f4e37"
        title = f"<title>{_e(plot['producer'])} · {_e(plot['plot_id'])}</title>"
        if geometry["type"] == "Polygon":
            for ring in geometry["coordinates"]:
                pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in map(xy, ring))
                out.append(
                    f'<polygon points="{pts}" fill="{colour}" fill-opacity=".25" '
                    f'stroke="{colour}" stroke-width="1.5">{title}</polygon>'
                )
            outer = geometry["coordinates"][0][:-1]
            centre = [sum(p[0] for p in outer) / len(outer), sum(p[1] for p in outer) / len(outer)]
        else:
            centre = geometry["coordinates"]
        x, y = xy(centre)
        out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{colour}">{title}</circle>')
        dots.append((x, y, plot["producer"]))
    labelled = dots if len(dots) <= MAX_MAP_LABELS else []  # else only the dots' titles
    has_women = any(women & set(p["lots"]) for p in plots)
    legend = [("#a2366f", labels[0])] if has_women else []
    legend += [("#6f4e37", labels[1])] if not all(women & set(p["lots"]) for p in plots) else []
    legend = legend if has_women else []
    taken: list[_Box] = [  # no label over the north arrow, the scale bar or the legend
        (width - 28, 8, width, 42),
        (0, height - 36, 16 + width / 4 + 4, height),
        *[
            (0, 6 + 16 * i, 30 + _CHAR_W * len(label), 24 + 16 * i)
            for i, (_c, label) in enumerate(legend)
        ],
    ]
    spots = _place_labels(labelled, size, taken)
    for (x, y, name), (tx, ty, anchor) in zip(labelled, spots, strict=True):
        if abs(ty - (y + 4)) > 6:  # moved away from its dot: draw a leader line
            out.append(
                f'<path d="M{x:.1f} {y:.1f} L{tx:.1f} {ty - 4:.1f}" stroke="#6b625b" '
                'stroke-width=".6"/>'
            )
        out.append(
            f'<text x="{tx:.1f}" y="{ty:.1f}" text-anchor="{anchor}" fill="#1f1a17">'
            f"{_e(name)}</text>"
        )
    out.append(_scale_bar(scale, lang, size))
    out.append(
        f'<text x="{width - 18:g}" y="22" text-anchor="middle" font-weight="700">N</text>'
        f'<path d="M{width - 18:g} 26 l-5 12 h10 z" fill="#1f1a17"/>'
    )
    for i, (colour, label) in enumerate(legend):
        out.append(
            f'<circle cx="16" cy="{14 + 16 * i}" r="5" fill="{colour}"/>'
            f'<text x="26" y="{18 + 16 * i}">{_e(label)}</text>'
        )
    out.append("</svg>")
    return "".join(out)


_CHAR_W, _LINE_H = 6.4, 13.0  # a label's size at font-size 11, roughly
_LABEL_DY = (4.0, -9.0, 17.0, -22.0, 30.0, -35.0, 43.0, -48.0, 56.0, -61.0)


def _place_labels(
    dots: list[tuple[float, float, str]],
    size: tuple[float, float] = (_MAP_W, _MAP_H),
    taken: Sequence[_Box] = (),
) -> list[tuple[float, float, str]]:
    """Where each dot's label goes: the first spot beside or near it that is inside the
    drawing (``size``) and overlaps no label and nothing ``taken``.

    Tries right then left of the dot, then further up and down; when no spot is free, the
    first one inside the drawing, else the label pushed inside it. Returns
    ``(x, y, text-anchor)`` per dot, in the order given.

    >>> _place_labels([(100, 100, "A-1"), (101, 101, "A-2")])
    [(108, 104.0, 'start'), (93, 105.0, 'end')]
    >>> _place_labels([(630, 100, "APR-0502")])  # at the right edge: to its left, anchored at the end
    [(622, 104.0, 'end')]
    """
    boxes: list[_Box] = list(taken)
    placed: dict[int, tuple[float, float, str]] = {}
    for i in sorted(range(len(dots)), key=lambda i: (dots[i][1], dots[i][0])):
        x, y, text = dots[i]
        w = _CHAR_W * len(text)
        spots = [
            (x + side * 8, y + dy, "start" if side > 0 else "end")
            for dy in _LABEL_DY
            for side in (1, -1)
        ]
        spot = next((sp for sp in spots if _free(_box(sp, w), boxes, size)), None)
        if spot is None:  # crowded: overlap another label rather than leave the drawing
            spot = next((sp for sp in spots if _free(_box(sp, w), [], size)), None)
        if spot is None:
            spot = _pushed_inside(spots[0], w, size)
        boxes.append(_box(spot, w))
        placed[i] = spot
    return [placed[i] for i in range(len(dots))]


_Box = tuple[float, float, float, float]


def _box(spot: tuple[float, float, str], width: float) -> _Box:
    """The (left, top, right, bottom) of a label of `width` at `spot`."""
    left = spot[0] if spot[2] == "start" else spot[0] - width
    return left, spot[1] - _LINE_H + 3, left + width, spot[1] + 3


def _pushed_inside(
    spot: tuple[float, float, str], width: float, size: tuple[float, float]
) -> tuple[float, float, str]:
    """``spot`` moved the least that puts a label of ``width`` inside the drawing."""
    x, y, _anchor = spot
    left = min(max(x if spot[2] == "start" else x - width, 0.0), max(size[0] - width, 0.0))
    return left, min(max(y, _LINE_H - 3), size[1] - 3), "start"


def _free(a: _Box, boxes: Sequence[_Box], size: tuple[float, float] = (_MAP_W, _MAP_H)) -> bool:
    """Whether box `a` is inside the map and overlaps none of `boxes`."""
    inside = a[0] >= 0 and a[2] <= size[0] and a[1] >= 0 and a[3] <= size[1]
    return inside and all(
        a[0] >= b[2] or b[0] >= a[2] or a[1] >= b[3] or b[1] >= a[3] for b in boxes
    )


def _positions(geometry: JSON) -> list[list[float]]:
    if geometry["type"] == "Point":
        return [geometry["coordinates"]]
    return [p for ring in geometry["coordinates"] for p in ring]


def _scale_bar(scale: float, lang: str = "en", size: tuple[float, float] = (_MAP_W, _MAP_H)) -> str:
    """A scale bar at the bottom left: the longest nice length under a quarter of the width."""
    px_per_km = scale / _KM_PER_DEG
    km = max((n for n in _NICE_KM if n * px_per_km <= size[0] / 4), default=_NICE_KM[0])
    length = km * px_per_km
    x0, y0 = 16.0, size[1] - 16
    label = f"{number(km, 1, lang)} km"
    return (
        f'<path d="M{x0:.1f} {y0 - 5:.1f} v5 h{length:.1f} v-5" fill="none" stroke="#1f1a17" '
        f'stroke-width="1.5"/><text x="{x0 + length / 2:.1f}" y="{y0 - 8:.1f}" '
        f'text-anchor="middle">{label}</text>'
    )
