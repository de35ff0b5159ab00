"""Answers written for people: the text forms the CLI prints (a lineage tree as indented text).

The query modules return plain data; what a person reads is made here, so
the same answer can be printed, dumped as JSON or served over HTTP.
"""

from __future__ import annotations

from typing import Any

__all__ = ["format_tree"]

JSON = dict[str, Any]


def format_tree(node: JSON, indent: str = "    ") -> str:
    """Render :func:`lottrace.provenance.tree`'s answer as indented text, one lot and its checkpoints per block.

    Parameters
    ----------
    node : dict
        The answer of :func:`lottrace.provenance.tree` (or any node of it).
    indent : str, optional
        What each level of inputs is indented by.

    Returns
    -------
    str
        One line per lot (code, kg, stage, kg it gave to its parent), then
        one line per checkpoint; a lot shown before is marked, not repeated.

    Examples
    --------
    >>> leaf = {"lot": "H1", "kg": 200.0, "stage": "drying", "link_kg": 200.0,
    ...         "checkpoints": [{"stage": "harvest", "time": "2025-05-01T08:00:00-05:00",
    ...                          "site": "farm:H1", "result": None, "kg": 1000.0}],
    ...         "children": [], "repeated": False}
    >>> root = {"lot": "G1", "kg": 300.0, "stage": "gatherer_qc", "link_kg": None,
    ...         "checkpoints": [{"stage": "gatherer_qc", "time": "2025-05-15T08:00:00-05:00",
    ...                          "site": "gatherer:G1", "result": "accepted", "kg": 300.0}],
    ...         "children": [leaf], "repeated": False, "voided": []}
    >>> print(format_tree(root))
    G1  300 kg  gatherer_qc
      2025-05-15T08:00:00-05:00  gatherer_qc  gatherer:G1  accepted
        H1  200 kg  drying  (200 kg into G1)
          2025-05-01T08:00:00-05:00  harvest  farm:H1
    """
    lines: list[str] = []

    def walk(n: JSON, depth: int, parent: str | None) -> None:
        pad = indent * depth
        head = f"{pad}{n['lot']}  {_kg_text(n['kg'])} kg  {n['stage']}"
        if parent is not None and n.get("link_kg") is not None:
            head += f"  ({_kg_text(n['link_kg'])} kg into {parent})"
        if n.get("repeated"):
            lines.append(head + "  (shown above)")
            return
        lines.append(head)
        for c in n["checkpoints"]:
            result = f"  {c['result']}" if c.get("result") else ""
            lines.append(f"{pad}  {c['time']}  {c['stage']}  {c['site']}{result}")
        for child in n["children"]:
            walk(child, depth + 1, n["lot"])

    walk(node, 0, None)
    if node.get("voided"):
        lines.append(f"{len(node['voided'])} voided event(s) not shown")
    return "\n".join(lines)


def _kg_text(x: float | None) -> str:
    return "?" if x is None else f"{x:,.3f}".rstrip("0").rstrip(".")
