"""The lot passport: its facts, its two languages, escaping, the QR code and the command."""

from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import segno
from click.testing import CliRunner, Result

from lottrace.cli import cli
from lottrace.compliance import certify
from lottrace.dds import carry_statements
from lottrace.demo import build_demo
from lottrace.errors import InvalidInput, UnknownLot
from lottrace.ledger import Ledger
from lottrace.passport import (
    MAX_MAP_LABELS,
    STRINGS,
    passport,
    passport_data,
    passport_url,
    plot_map_svg,
    render_html,
)
from lottrace.provenance import downstream, upstream

from factories import batch, drying, export, harvest, mill, qc


def run(db: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", str(db), *args])


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("s") / "demo.db"
    build_demo(path)
    return path


def hostile_events() -> list[dict[str, object]]:
    """A small lineage whose free-text fields are full of HTML, one plot unlocated."""
    return [
        harvest(
            "H1",
            1,
            1000,
            producer='<script>alert("x")</script>',
            women_producer=True,
            certifications=["organic"],
        ),
        harvest("H2", 2, 500, producer="Ana & <b>Co</b>", plot={"id": "<i>P2</i>", "area_ha": 1.0}),
        drying("H1", 10, 200),
        drying("H2", 11, 100),
        qc(
            "G1",
            15,
            inputs=[("H1", 200), ("H2", 100)],
            moisture_pct=11.0,
            cup_score=84.5,
            note="<img src=x onerror=alert(1)>",
        ),
        mill(40, [("G1", 300)], [("M1", 200, "Grade 1"), ("M2", 30, "Grade 2")]),
        export("M1", 60, 200, container="<MSKU>", buyer='O\'Brien & "Sons"', bags=3),
    ]


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    path = tmp_path / "h.db"
    with Ledger.create(path) as ledger:
        ledger.append(batch(*hostile_events()))
    return path


# --------------------------------------------------------------------------- data


def test_data_comes_from_the_library_queries(sample: Path) -> None:
    with Ledger(sample) as ledger:
        d = passport_data(ledger, "EXP-25-CEC-01")
        up = upstream(ledger, "EXP-25-CEC-01")
        organic = certify(ledger, "EXP-25-CEC-01", "organic")
        down = carry_statements(ledger, downstream(ledger, "EXP-25-CEC-01"))
        seq, head = ledger.head()
    assert d["head"] == {"seq": seq, "hash": head}
    assert [s["producer"] for s in d["shares"]] == [s["producer"] for s in up["shares"]]
    assert d["women_share"] == 0
    by_scheme = {c["scheme"]: c for c in d["certifications"]}
    assert sorted(by_scheme) == ["fairtrade", "organic"]
    assert by_scheme["organic"]["certified"] is False
    assert by_scheme["organic"]["breaking"] == organic["breaking"]
    assert by_scheme["fairtrade"]["certified"] is True
    assert [x["container"] for x in d["exports"]] == ["MSCU7249054"]
    assert d["exports"] == [x for x in down["exports"] if x["lot"] == "EXP-25-CEC-01"]


def test_women_micro_lots_are_named_only_where_the_data_says_so(hostile: Path) -> None:
    with Ledger(hostile) as ledger:
        d = passport_data(ledger, "M1")
    women = {s["lots"][0]: s["women"] for s in d["shares"]}
    assert women == {"H1": True, "H2": False}
    assert d["women_share"] == pytest.approx(2 / 3)
    page = render_html(d, lang="en")
    assert page.count("Women producer&#x27;s micro-lot</span>") == 1
    assert "66.7 % of this lot comes from women producers" in page


def test_unknown_lot_raises(sample: Path) -> None:
    with Ledger(sample) as ledger, pytest.raises(UnknownLot):
        passport_data(ledger, "NOPE-1")


# --------------------------------------------------------------------------- the page


def text_of(page: str) -> str:
    """The page's text: tags dropped, entities decoded, whitespace collapsed."""
    body = page.split("<body>", 1)[1]
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)))


@pytest.mark.parametrize("lang", ["en", "es"])
def test_the_page_shows_every_fact_the_issue_lists(sample: Path, lang: str) -> None:
    with Ledger(sample) as ledger:
        page = passport(ledger, "EXP-25-JUM-01", lang=lang)
        _, head = ledger.head()
    t = STRINGS[lang]
    text = text_of(page)
    assert f'<html lang="{lang}">' in page
    for fact in [
        "EXP-25-JUM-01",
        "MSKU5930284",  # the container
        "New York",
        t["timeline"],
        "2025-06-30",  # the first harvest
        "port:PAITA",
        *("JUM-0041", "JUM-0058", "JUM-0063", "JUM-0089", "JUM-0105"),
        t["women"],
        {"en": "28.8 %", "es": "28,8 %"}[lang],  # JUM-0063's share
        t["map"],
        {"en": "11.1", "es": "11,1"}[lang],  # HQ moisture
        {"en": "86.75", "es": "86,75"}[lang],  # HQ cup score
        "Café Femenino",
        t["pass"],
        t["eudr_ok"].format(n=5),
        head,
        f"lottrace verify --expect {head}",
    ]:
        assert fact in text, f"{fact!r} not on the {lang} page"
    assert page.count("<circle") >= 5  # one dot per plot on the map


def test_spanish_and_english_tables_have_the_same_strings() -> None:
    assert STRINGS["es"].keys() == STRINGS["en"].keys()
    assert all(STRINGS["es"][k] != "" for k in STRINGS["es"])


def test_failed_checks_are_shown_as_failures(sample: Path) -> None:
    with Ledger(sample) as ledger:
        page = passport(ledger, "EXP-25-CEC-01", lang="es")
    organic = re.search(r'<li data-scheme="organic">(.*?)</li>', page)
    assert organic is not None
    assert 'class="badge fail">no cumple' in organic.group(1)
    assert "3 de 5 cosechas no la tienen: CEC-25-H0112-1, CEC-25-H0145-1" in organic.group(1)


def test_user_data_is_escaped(hostile: Path) -> None:
    with Ledger(hostile) as ledger:
        page = passport(ledger, "M1", url="https://coop.example/p/{lot}")
        missing = passport_data(ledger, "M1")["eudr_problems"]
    assert "<script" not in page and "<b>" not in page and "<i>" not in page
    assert "<MSKU>" not in page and "onerror=alert" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "Ana &amp; &lt;b&gt;Co&lt;/b&gt;" in page
    assert "O&#x27;Brien &amp; &quot;Sons&quot;" in page
    assert "&lt;MSKU&gt;" in page
    # The unlocated plot fails the EUDR check, and the page says so and why.
    assert [p["problem"] for p in missing] == ["no-geometry"]
    assert 'class="badge fail"' in page.split('id="eudr"')[1]
    assert (
        "No location recorded for: Ana &amp; &lt;b&gt;Co&lt;/b&gt; (&lt;i&gt;P2&lt;/i&gt;)" in page
    )
    assert (
        "lot H2: producer Ana &amp; &lt;b&gt;Co&lt;/b&gt;: plot &lt;i&gt;P2&lt;/i&gt; has no location"
        in page
    )
    with Ledger(hostile) as ledger:
        es = passport(ledger, "M1", lang="es")
    assert "la parcela &lt;i&gt;P2&lt;/i&gt; no tiene ubicación" in es


def test_the_page_loads_nothing_from_anywhere(sample: Path) -> None:
    url = "https://coop.example/pasaportes/EXP-25-JUM-01.html"
    with Ledger(sample) as ledger:
        page = passport(ledger, "EXP-25-JUM-01", url=url)
    assert "default-src 'none'" in page  # the browser itself refuses any load
    assert not re.search(r"<(script|link|img|iframe|object|embed)\b", page)
    assert not re.search(r"\bsrc=|@import|url\(", page)
    # The only address is the passport's own, as a link under the QR code; the
    # SVG namespace is a name, not a request.
    found = set(re.findall(r"https?://[^\s\"'<>]+", page))
    assert found == {url, "http://www.w3.org/2000/svg"}


def test_the_qr_code_encodes_the_configured_url(sample: Path) -> None:
    with Ledger(sample) as ledger:
        data = passport_data(ledger, "EXP-25-JUM-01")
    a = passport_url("https://coop.example/p/{lot}.html", "EXP-25-JUM-01")
    b = "https://coop.example/p/OTHER.html"
    page = render_html(data, url=a)

    def qr(u: str) -> str:
        return segno.make(u, error="m", micro=False).svg_inline(scale=4, border=2, dark="#1f1a17")

    assert qr(a) in page and qr(b) not in page
    assert 'id="qr"' not in render_html(data)  # no URL, no QR


def test_passport_url_checks_and_quotes() -> None:
    assert passport_url("http://h/x?lot={lot}", "A/B C") == "http://h/x?lot=A%2FB%20C"
    for bad in ["coop.example/{lot}", "javascript:alert(1)", "https:///nohost", "https://a b/"]:
        with pytest.raises(InvalidInput, match="must start with http"):
            passport_url(bad, "L1")


def test_map_projection_keeps_north_up_and_east_right() -> None:
    west_north = {
        "producer": "WN",
        "plot_id": "1",
        "lots": ["a"],
        "geometry": {"type": "Point", "coordinates": [-79.2, -5.0]},
    }
    east_south = {
        "producer": "ES",
        "plot_id": "2",
        "lots": ["b"],
        "geometry": {"type": "Point", "coordinates": [-79.0, -5.2]},
    }
    svg = plot_map_svg([west_north, east_south], labels=("w", "o"))
    dots = {
        m[2]: (float(m[0]), float(m[1]))
        for m in re.findall(
            r'<circle cx="([\d.]+)" cy="([\d.]+)" r="5" fill="#[0-9a-f]+"><title>(\w+)', svg
        )
    }
    assert dots["WN"][0] < dots["ES"][0] and dots["WN"][1] < dots["ES"][1]
    # Equal degree spans are drawn with cos(latitude) less width than height.
    dx, dy = dots["ES"][0] - dots["WN"][0], dots["ES"][1] - dots["WN"][1]
    assert dx / dy == pytest.approx(0.99619, abs=1e-3)  # cos(5.1°)
    assert "km</text>" in svg


# --------------------------------------------------------------------------- command


def test_command_writes_one_file(sample: Path, tmp_path: Path) -> None:
    out = tmp_path / "lot.html"
    r = run(
        sample,
        "passport",
        "EXP-25-JUM-01",
        "-o",
        str(out),
        "--lang",
        "es",
        "--url",
        "https://coop.example/p/{lot}.html",
    )
    assert r.exit_code == 0, r.output
    assert r.output == (
        f"wrote {out}: passport of lot EXP-25-JUM-01 in es; "
        "QR code for https://coop.example/p/EXP-25-JUM-01.html\n"
    )
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "Pasaporte del lote" in page
    assert 'id="qr"' in page


def test_command_default_file_name_and_env_url(
    sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LOTTRACE_PASSPORT_URL", "https://coop.example/{lot}")
    r = run(sample, "passport", "MILL-25-0412-G1")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "MILL-25-0412-G1.html").is_file()
    assert "QR code for https://coop.example/MILL-25-0412-G1" in r.output


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["NOPE-1"], 2, "Error: no lot 'NOPE-1' in "),
        (["EXP-25-JUM-01", "--url", "coop.example/{lot}"], 1, "Error: --url 'coop.example/{lot}'"),
        (["EXP-25-JUM-01", "--lang", "fr"], 2, "Invalid value for '--lang'"),
    ],
)
def test_command_errors_write_nothing(
    sample: Path, tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    out = tmp_path / "lot.html"
    r = run(sample, "passport", *args, "-o", str(out))
    assert r.exit_code == code
    assert message in r.output and "Traceback" not in r.output
    assert not out.exists()


def test_command_names_an_unwritable_output(sample: Path, tmp_path: Path) -> None:
    r = run(sample, "passport", "EXP-25-JUM-01", "-o", str(tmp_path / "no" / "lot.html"))
    assert r.exit_code == 1
    assert r.output.startswith(f"Error: cannot write {tmp_path / 'no' / 'lot.html'}: ")
    assert len(r.output.splitlines()) == 1


def test_page_is_deterministic(sample: Path) -> None:
    with Ledger(sample) as ledger:
        a = passport(ledger, "EXP-25-APR-02")
        b = passport(ledger, "EXP-25-APR-02")
    assert a == b
    assert json.dumps(a)  # one plain string


class _Nesting(HTMLParser):
    """Checks that every element is closed, in order (void elements aside)."""

    VOID = frozenset({"meta", "br", "img", "path", "circle", "polygon", "input", "link", "hr"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pass

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


@pytest.mark.parametrize(
    "lot", ["EXP-25-JUM-01", "EXP-25-CEC-01", "APR-25-H0519-1", "JUM-25-HQ-009"]
)
def test_the_markup_is_well_nested(sample: Path, lot: str) -> None:
    with Ledger(sample) as ledger:
        page = passport(ledger, lot, url="https://coop.example/{lot}")
    checker = _Nesting()
    checker.feed(page)
    checker.close()
    assert checker.errors == [] and checker.stack == []


def test_spanish_numbers_use_a_decimal_comma_and_never_a_thousands_point(sample: Path) -> None:
    """119.237 kg is ``119,237`` in Spanish (never ``119.237``, read as thousands there)."""
    with Ledger(sample) as ledger:
        d = passport_data(ledger, "EXP-25-JUM-01")
    d["kg"] = 119.237
    d["exports"][0]["kg"] = 1020.5
    d["shares"][0]["kg"] = 12345.625
    es_page = render_html(d, lang="es")
    es, en = text_of(es_page), text_of(render_html(d, lang="en"))
    assert "12\u202f345,625" in es_page  # a narrow no-break space groups five digits on
    assert "119,237 kg" in es and "119.237" not in es
    assert "1020,5" in es and "1.020,5" not in es and "1,020.5" not in es
    assert "119.237 kg" in en and "1,020.5" in en and "12,345.625" in en
    # every decimal number on the Spanish page has a comma, none a point
    body = es.split(d["head"]["hash"])[0]  # before the hashes and the command
    assert not re.search(r"\d\.\d", body.replace(d["lot"], "")), re.findall(r"\S*\d\.\d\S*", body)


def test_corrected_events_are_left_out_and_counted(sample: Path) -> None:
    with Ledger(sample) as ledger:
        d = passport_data(ledger, "JUM-25-HQ-009")
        page = render_html(d, lang="es")
    assert len(d["voided"]) == 1
    assert [q["moisture_pct"] for q in d["qc"] if q["lot"] == "JUM-25-HQ-009"] == [11.5]
    assert "1 evento(s) corregido(s) no se muestran en esta página." in page
    assert d["exports"] == [] and "Este lote aún no se ha exportado." in page


def test_a_crowded_map_names_no_plot_but_keeps_every_dot() -> None:
    plots = [
        {
            "producer": f"P{i}",
            "plot_id": f"X{i}",
            "lots": [f"H{i}"],
            "geometry": {"type": "Point", "coordinates": [-79 + i / 1000, -5.0 - i / 2000]},
        }
        for i in range(MAX_MAP_LABELS + 1)
    ]
    crowded = plot_map_svg(plots, labels=("w", "o"))
    assert crowded.count('r="5"') == MAX_MAP_LABELS + 1
    assert crowded.count(">P1<") == 0 and crowded.count("<title>P1 · X1</title>") == 1
    named = plot_map_svg(plots[:MAX_MAP_LABELS], labels=("w", "o"))
    assert all(f">P{i}</text>" in named for i in range(MAX_MAP_LABELS))


@pytest.mark.parametrize("size", [(640.0, 360.0), (400.0, 340.0)])
def test_every_label_stays_inside_the_drawing(size: tuple[float, float]) -> None:
    """Labels of plots at the map's right edge went past it (cut on a 390 px phone)."""
    from lottrace.passport import _CHAR_W

    plots = [
        {
            "producer": f"APR-05{i:02d}",
            "plot_id": f"X{i}",
            "lots": [f"H{i}"],
            "geometry": {"type": "Point", "coordinates": [-79 + (i % 3) / 50, -5.0 - i / 40]},
        }
        for i in range(12)
    ]
    svg = plot_map_svg(plots, labels=("w", "o"), size=size)
    assert f'viewBox="0 0 {size[0]:g} {size[1]:g}"' in svg
    texts = re.findall(
        r'<text x="([\d.-]+)" y="([\d.-]+)" text-anchor="(\w+)"[^>]*>(APR-\d+)<', svg
    )
    assert len(texts) == 12
    for x, y, anchor, name in texts:
        left = float(x) - (_CHAR_W * len(name) if anchor == "end" else 0)
        assert left >= 0 and left + _CHAR_W * len(name) <= size[0], (x, anchor, name)
        assert float(y) - 10 >= 0 and float(y) + 3 <= size[1], (y, name)


def test_a_passport_builds_its_lot_s_graph_once_and_answers_the_same(
    sample: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """graph.shared_graphs: upstream, route, EUDR and each certification asked for the same
    ancestors graph (seven builds for a lot with three schemes); now one, same answer."""
    from lottrace import graph, passport
    from lottrace.graph import ancestors_graph, shared_graphs

    built: list[str] = []
    lineage = graph._lineage

    def counted(*args: Any, **kwargs: Any) -> Any:
        built.append(args[1])
        return lineage(*args, **kwargs)

    with Ledger(sample) as ledger:
        alone = passport._passport_data(ledger, "EXP-25-JUM-01")
        monkeypatch.setattr(graph, "_lineage", counted)
        built.clear()
        shared = passport.passport_data(ledger, "EXP-25-JUM-01")
        assert shared == alone
        up = [lot for lot in built if lot == "EXP-25-JUM-01"]
        assert len(up) <= 2, built  # the ancestors graph once (a descendants one may follow)
        with shared_graphs():
            a = ancestors_graph(ledger, "EXP-25-JUM-01", timelines=True)
            assert ancestors_graph(ledger, "EXP-25-JUM-01", timelines=True) is a
            assert ancestors_graph(ledger, "EXP-25-JUM-01") is not a  # no timelines: not kept
        assert ancestors_graph(ledger, "EXP-25-JUM-01", timelines=True) is not a
