"""Charts: `delays --plot` and `bottlenecks --plot` write real PNG and SVG files of the right legs."""

from __future__ import annotations

import re
import struct
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from lottrace.cli import cli
from lottrace.delays import bottlenecks, delays, excess_by_month, leg_hours
from lottrace.demo import build_demo
from lottrace.ledger import Ledger

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("plots") / "demo.db"
    build_demo(path)
    return path


def run(db: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", str(db), *args])


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    assert data[12:16] == b"IHDR"
    assert data.endswith(b"IEND\xaeB`\x82"), "PNG is cut short"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def svg_texts(path: Path) -> list[tuple[float, str]]:
    """(y, text) of every text element, top of the picture first."""
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    out = []
    for t in root.iter(f"{SVG}text"):
        if t.get("y") is not None:
            y = float(t.get("y", 0))
        else:  # matplotlib places each line of a multi-line label with translate(x y)
            m = re.search(r"translate\([-\d.]+ ([-\d.]+)\)", t.get("transform", ""))
            assert m, ET.tostring(t)
            y = float(m.group(1))
        out.append((y, "".join(t.itertext()).strip()))
    return sorted(out)


def test_delays_png_is_a_real_image(sample: Path, tmp_path: Path) -> None:
    out = tmp_path / "delays.png"
    r = run(sample, "delays", "--plot", str(out))
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[0].startswith("from")  # the table still prints
    assert r.output.splitlines()[-1] == f"wrote {out}: 5 legs, worst: dry_mill → export (n=5)"
    width, height = png_size(out)
    assert width > 600 and height > 200


@pytest.mark.parametrize("style", ["box", "violin"])
def test_delays_svg_names_every_leg_worst_first(sample: Path, tmp_path: Path, style: str) -> None:
    out = tmp_path / "delays.svg"
    r = run(sample, "delays", "--plot", str(out), "--plot-style", style)
    assert r.exit_code == 0, r.output
    with Ledger(sample) as ledger:
        rows = delays(ledger)
    # worst first: the order of the medians in the delays table, longest at the top
    expected = [
        f"{r['from']} → {r['to']} (n={r['count']})"
        for r in sorted(rows, key=lambda r: -r["p50_hours"])
    ]
    drawn = [text for _, text in svg_texts(out) if "→" in text]
    assert drawn == expected


def test_delays_plot_by_site_and_window(sample: Path, tmp_path: Path) -> None:
    out = tmp_path / "sites.svg"
    r = run(sample, "delays", "--by", "site", "--since", "2025-09-01", "--plot", str(out))
    assert r.exit_code == 0, r.output
    text = out.read_text(encoding="utf-8")
    assert "mill:CHICLAYO-1 → port:PAITA" in text
    assert "farm:APR-P0231" not in text  # its legs all ended before September
    assert "2025-09-01" in text  # the window is in the title


def test_bottlenecks_svg_shows_routes_and_months(sample: Path, tmp_path: Path) -> None:
    out = tmp_path / "b.svg"
    r = run(sample, "bottlenecks", "--top", "3", "--plot", str(out))
    assert r.exit_code == 0, r.output
    assert (
        r.output.splitlines()[-1]
        == f"wrote {out}: 3 routes, worst: gatherer:ELPALTO-01 → hq:JUMARP"
    )
    texts = [t for _, t in svg_texts(out)]
    routes = [t for t in texts if "→" in t and ":" in t]
    assert routes == [
        "gatherer:ELPALTO-01 → hq:JUMARP",
        "mill:CHICLAYO-1 → port:PAITA",
        "farm:APR-P0231 → gatherer:SIG-03",
    ]
    assert {"2025-06", "2025-07", "2025-08", "2025-09"} <= set(texts)
    assert "2025-05" not in texts  # no top-3 route lost hours in May


def test_bottlenecks_png_with_json(sample: Path, tmp_path: Path) -> None:
    out = tmp_path / "b.png"
    r = CliRunner().invoke(cli, ["--db", str(sample), "bottlenecks", "--json", "--plot", str(out)])
    assert r.exit_code == 0
    assert r.stdout.lstrip().startswith("[")  # the note goes to stderr, JSON stays parseable
    assert r.stderr.startswith(f"wrote {out}")
    png_size(out)


def test_monthly_excess_adds_up_to_the_ranking(sample: Path) -> None:
    with Ledger(sample) as ledger:
        ranked = bottlenecks(ledger, top=5)
        monthly = excess_by_month(ledger, top=5)
        groups = leg_hours(ledger, by="month")
        counts = sum(r["count"] for r in delays(ledger, by="month"))
    for route in ranked:
        months = [m["excess_hours"] for m in monthly if m["rank"] == route["rank"]]
        assert months and sum(months) == pytest.approx(route["excess_hours"], abs=0.01)
    assert sum(len(g["hours"]) for g in groups) == counts


def test_without_matplotlib_a_one_line_install_hint(
    sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    out = tmp_path / "d.png"
    for args in (["delays"], ["bottlenecks"]):
        r = run(sample, *args, "--plot", str(out))
        assert r.exit_code == 1
        assert r.stdout == ""  # failed before any work
        assert r.stderr == "Error: charts need matplotlib: pip install 'lottrace[plot]'\n"
        assert not out.exists()


def test_unknown_chart_format_is_refused_early(sample: Path, tmp_path: Path) -> None:
    r = run(sample, "delays", "--plot", str(tmp_path / "d.pdf"))
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr.strip().endswith("a chart is written as .png or .svg, not '.pdf'")
