"""What the web app's browser tests share: the users, the sizes, the served ledger's handle."""

from __future__ import annotations

import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from lottrace.ledger import Ledger

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SIZES = {"390": (390, 844), "1280": (1280, 800)}
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"

OWNER = "APROCASSI"
ELB = "Elbkaffee Rohkaffee-Import GmbH"  # bought MILL-25-0412-G1
FLANDRIA = "Flandria Green Coffee NV"  # bought EXP-25-CEC-01
OTHER = "Cooperativa Vecina"
OTHER_SITE = "farm:VECINA-01"
USERS = {
    "admin": (OWNER, "admin"),
    "field": (OWNER, "field"),
    "qc": (OWNER, "qc"),
    "analyst": (OWNER, "analyst"),
    "buyer": (ELB, "buyer"),
    "buyer2": (FLANDRIA, "buyer"),
    "other_field": (OTHER, "field"),
}


@dataclass
class Web:
    db: Path
    url: str
    tokens: dict[str, str]
    log: Path
    clients: dict[str, httpx.Client] = field(default_factory=dict)

    def api(self, who: str) -> httpx.Client:
        if who not in self.clients:
            self.clients[who] = httpx.Client(
                base_url=self.url,
                headers={
                    "Authorization": f"Bearer {self.tokens[who]}",
                    "Accept": "application/json",
                },
                timeout=60,
            )
        return self.clients[who]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _lottrace(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lottrace", "--db", str(db), *args],
        capture_output=True,
        text=True,
        check=False,
    )


def count_events(db: Path) -> int:
    """The ledger's events, counted by the library."""
    with Ledger.reader(db) as ledger:
        return int(ledger.stats()["events"])
