"""The JSON the field and QC pages call: who the caller is and its sites, the lots with kg
left to draw from, a checkpoint checked without writing, and a checkpoint written.

Every route takes the caller from its token (:data:`.deps.User`); a write is
stamped with the caller as its actor and refused at another organisation's
site, as the server's captures are.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from .deps import User, access_of, reading

__all__ = ["router"]

router = APIRouter(tags=["web"])


@router.get("/api/me", summary="Who the token is: name, organisation, role, the sites it writes at")
def me(request: Request, user: User) -> dict[str, Any]:
    access = access_of(request)
    with reading(request) as ledger:
        known = ledger.sites()
    return {
        "name": user.name,
        "org": user.org,
        "role": user.role,
        "owner": user.owner,
        "sites": access.writable_sites(user, known),
    }
