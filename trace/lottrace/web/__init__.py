"""The web app ``lottrace serve`` serves at ``/``: page shells and the JSON the pages need.

A face beside :mod:`lottrace.server` (which includes :data:`router` and mounts
the static files): :mod:`.pages` (the shell: login, home, field, upload, the
service worker), :mod:`.fieldapi` (what field and QC pages call),
:mod:`.insight` (the buyers' and analysts' pages), on the dependencies in
:mod:`.deps` that the server's own routes use too.
"""

from __future__ import annotations

from fastapi import APIRouter

from . import fieldapi, insight, pages
from .pages import STATIC

__all__ = ["STATIC", "router"]

router = APIRouter()
router.include_router(pages.router)
router.include_router(fieldapi.router)
router.include_router(insight.router)
