"""The buyers' and analysts' pages: find a lot, a lot's live passport, the delay dashboard
(and the JSON they need). Empty in the shell: W2's module."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter()
