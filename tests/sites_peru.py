"""Master data for the sample season's sites (names and coordinates, northern Peru), as a
partner's EPCIS master data would give them: what the dashboard's map places sites by."""

from __future__ import annotations

from lottrace.events import EventBase, parse_event

LOCATION = "urn:epcglobal:epcis:vtype:BusinessLocation"
MDA = "urn:epcglobal:cbv:mda#"

#: site -> (name, latitude, longitude)
SITES: dict[str, tuple[str, float, float]] = {
    "gatherer:CHIRINOS-01": ("Acopio Chirinos", -5.305, -78.897),
    "gatherer:ELPALTO-01": ("Acopio El Palto", -5.95, -78.32),
    "gatherer:HUABAL-02": ("Acopio Huabal", -5.613, -78.902),
    "gatherer:INCAHUASI-01": ("Acopio Incahuasi", -6.233, -79.317),
    "gatherer:KANARIS-02": ("Acopio Kañaris", -6.043, -79.263),
    "gatherer:SIG-03": ("Acopio San Ignacio 3", -5.16, -78.99),
    "hq:APROCASSI": ("APROCASSI, San Ignacio", -5.146, -79.004),
    "hq:CECANOR": ("CECANOR, Chiclayo", -6.771, -79.84),
    "hq:JUMARP": ("JUMARP, Jamalca", -5.91, -78.22),
    "mill:CHICLAYO-1": ("Planta Chiclayo", -6.80, -79.87),
    "port:PAITA": ("Puerto de Paita", -5.085, -81.114),
}


def master_data(sites: dict[str, tuple[str, float, float]] = SITES) -> list[tuple[str, EventBase]]:
    """One ``master_data`` event per site, ready for ``Ledger.append``."""
    out = []
    for i, (site, (name, lat, lon)) in enumerate(sorted(sites.items())):
        ev = parse_event(
            {
                "type": "master_data",
                "time": "2025-03-01T08:00:00-05:00",
                "vocabulary": LOCATION,
                "element": {
                    "id": f"https://lottrace.org/site/{site}",
                    "attributes": [
                        {"id": MDA + "name", "attribute": name},
                        {"id": MDA + "latitude", "attribute": lat},
                        {"id": MDA + "longitude", "attribute": lon},
                    ],
                },
            }
        )
        out.append((f"sites:{i}", ev))
    return out
