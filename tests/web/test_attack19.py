"""Issue #19's attack (F13, F9, F8, F1): what one organisation's users learn or change of
another's lots through the card, the search and the dry runs. Through a real server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .webapp import ELB

VECINA = "Cooperativa Vecina"
HARVEST = {
    "type": "harvest",
    "time": "2025-05-02T10:00:00-05:00",
    "site": "farm:VECINA-01",
    "lot": "VEC-H-5",
    "producer": "V-9",
    "plot.id": "APR-P0533",
    "kg": "100",
    "variety": "Caturra",
    "process": "washed",
}


class Served:
    def __init__(self, db: Path, url: str, tokens: dict[str, str]) -> None:
        self.db, self.url, self.tokens = db, url, tokens

    def api(self, who: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.tokens[who]}"}, timeout=60
        )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from lottrace.demo import build_demo
    from test_server import lottrace, start

    tmp = tmp_path_factory.mktemp("attack19")
    db = tmp / "s.db"
    build_demo(db)
    tokens = {}
    for name, org, role, *owner in [
        ("admin", "APROCASSI", "admin", "--owner"),
        ("elb", ELB, "buyer"),
        ("vfield", VECINA, "field"),
        ("vanalyst", VECINA, "analyst"),
        ("gone", VECINA, "analyst"),
    ]:
        done = lottrace(db, "users", "add", name, "--org", org, "--role", role, *owner)
        assert done.returncode == 0, done.stderr
        tokens[name] = done.stdout.strip()
    assert lottrace(db, "users", "site", "farm:VECINA-01", "--org", VECINA).returncode == 0
    proc, url = start(db, tmp / "log")
    try:
        yield Served(db, url, tokens)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _problems(client: httpx.Client, lot: str) -> list[dict[str, Any]]:
    r = client.get(f"/api/lots/{lot}/card")
    assert r.status_code == 200, r.text
    problems: list[dict[str, Any]] = r.json()["eudr_problems"]
    return problems


def test_another_organisations_harvest_does_not_change_the_owners_card(served: Served) -> None:
    """F13 + F9: the card's EUDR problems are the /eudr route's, and name nothing the caller
    may not see (another organisation's harvest naming the owner's plot id)."""
    with served.api("vfield") as vfield, served.api("elb") as elb, served.api("admin") as admin:
        before = _problems(elb, "EXP-25-APR-02")
        r = vfield.post("/api/field/events", json=HARVEST)
        assert r.status_code == 201, r.text
        assert _problems(elb, "EXP-25-APR-02") == before == []
        assert admin.get("/api/lots/EXP-25-APR-02/eudr").status_code == 200
        page = elb.get("/lot/EXP-25-APR-02")  # the passport the QR code points at
        assert page.status_code == 200
        assert "VEC-H-5" not in page.text and "V-9" not in page.text
        for lot in ("MILL-25-0412-G1", "APR-25-H0533-1"):
            assert _problems(admin, lot) == []
    with served.api("vanalyst") as vanalyst:
        mine = _problems(vanalyst, "VEC-H-5")
        eudr = vanalyst.get("/api/lots/VEC-H-5/eudr")
        assert eudr.status_code == 422
        assert mine == eudr.json()["problems"]
        text = json.dumps(mine)
        assert "APR-0533" not in text and "APR-25-H0533" not in text


def test_access_changes_count_at_once_in_find_and_card(served: Served) -> None:
    """F8: a site taken back, a token revoked, a user's role changed: each at once, with no
    append in between (the kept answers follow the access file, not only the ledger head)."""
    from test_server import lottrace

    lot = "APR-25-H0502-1"
    with served.api("vanalyst") as v, served.api("gone") as gone:

        def found(client: httpx.Client) -> list[str]:
            r = client.get("/api/find", params={"q": "APR-25-H0502"})
            assert r.status_code == 200, r.text
            return [x["lot"] for x in r.json()["results"]]

        assert found(v) == [] and found(gone) == []
        assert (
            lottrace(served.db, "users", "site", "farm:APR-P0502", "--org", VECINA).returncode == 0
        )
        assert found(v) == [lot] and found(gone) == [lot]
        assert v.get(f"/api/lots/{lot}/card").status_code == 200
        # taken back
        assert (
            lottrace(served.db, "users", "site", "farm:APR-P0502", "--org", "APROCASSI").returncode
            == 0
        )
        assert found(v) == []
        assert v.get(f"/api/lots/{lot}/card").status_code == 404
        # given again, then the token revoked
        assert (
            lottrace(served.db, "users", "site", "farm:APR-P0502", "--org", VECINA).returncode == 0
        )
        assert found(gone) == [lot]
        assert lottrace(served.db, "users", "revoke", "gone").returncode == 0
        assert gone.get("/api/find", params={"q": lot}).status_code == 401
        assert gone.get(f"/api/lots/{lot}/card").status_code == 401
        # the user's organisation changed (the access file edited by its keeper)
        path = Path(f"{served.db}.access.json")
        data = json.loads(path.read_text(encoding="utf-8"))
        for u in data["users"]:
            if u["name"] == "vanalyst":
                u["org"] = "Somebody Else"
        path.write_text(json.dumps(data), encoding="utf-8")
        assert found(v) == []
        assert v.get(f"/api/lots/{lot}/card").status_code == 404


@pytest.mark.parametrize("kind", ["upload", "field"])
def test_a_dry_run_does_not_tell_another_organisations_lot_from_a_missing_one(
    served: Served, kind: str
) -> None:
    """F1: /api/field/check and /api/upload/check answer another organisation's lot exactly
    as a lot that does not exist, naming the field."""
    theirs, missing = "APR-25-H0533-1", "NOPE-LOT-1"
    with served.api("vfield") as vfield:

        def answer(lot: str) -> Any:
            if kind == "field":
                form = {
                    "type": "drying",
                    "time": "2025-11-01T10:00:00-05:00",
                    "site": "farm:VECINA-01",
                    "lot": lot,
                    "kg": "10",
                }
                r = vfield.post("/api/field/check", json=form)
            else:
                sheet = f"tipo;fecha;lugar;lote;kilos\nsecado;01/11/2025 10:00;farm:VECINA-01;{lot};10\n"
                r = vfield.post("/api/upload/check", files={"file": ("s.csv", sheet.encode())})
            assert r.status_code == 200, r.text
            got = r.json()
            assert got["ok"] is False, got
            return json.loads(json.dumps(got["problems"]).replace(lot, "LOT"))

        one, other = answer(theirs), answer(missing)
        assert one == other, (one, other)
        assert one[0]["field"] in ("lot", "event")
