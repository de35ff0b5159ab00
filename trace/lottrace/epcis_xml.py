"""Read EPCIS 2.0 and 1.2 XML documents as the EPCIS 2.0 JSON-LD documents they stand for.

One job: the XML binding. :func:`xml_to_document` turns the bytes of an
``epcis:EPCISDocument`` (namespace ``urn:epcglobal:epcis:xsd:2`` or ``:1``)
into the JSON-LD form the rest of lottrace reads, following GS1's mapping
between the two bindings, so that the same events give the same Event Hash
IDs in either form:

- lists (``epcList/epc``, ``quantityList/quantityElement`` ...) become JSON
  arrays; ``quantity`` and sensor values become numbers;
- EPCIS 1.2's ``extension`` and ``baseExtension`` wrappers are unwrapped
  (``TransformationEvent`` sits in ``EventList/extension`` there);
- CBV values written as URNs (``urn:epcglobal:cbv:bizstep:shipping``) become
  the bare CBV words the JSON binding uses; ``gs1:Temperature`` sensor types
  become ``Temperature``;
- elements in other namespaces are extensions ``prefix:name``, their
  namespaces declared in the document's ``@context``; nested ones nest.

The header (``EPCISHeader``, master data, SBDH) is not read.
"""

from __future__ import annotations

import re
from typing import Any

from lxml import etree

from .contexts import PROTECTED
from .errors import InvalidInput

__all__ = ["EPCIS_XML_NS", "looks_like_xml", "xml_to_document"]

EPCIS_XML_NS = ("urn:epcglobal:epcis:xsd:2", "urn:epcglobal:epcis:xsd:1")
_CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
_EVENT_TYPES = frozenset(
    (
        "ObjectEvent",
        "AggregationEvent",
        "TransactionEvent",
        "TransformationEvent",
        "AssociationEvent",
    )
)
#: list element -> its item element; items that are plain text.
_TEXT_LISTS = {
    "epcList": "epc",
    "childEPCs": "epc",
    "inputEPCList": "epc",
    "outputEPCList": "epc",
    "correctiveEventIDs": "correctiveEventID",
}
_QUANTITY_LISTS = frozenset(
    ("quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList")
)
#: list element -> (item element, JSON key of the item's text); the ``type`` attribute kept.
_TYPED_LISTS = {
    "bizTransactionList": ("bizTransaction", "bizTransaction"),
    "sourceList": ("source", "source"),
    "destinationList": ("destination", "destination"),
}
_CBV_URN = re.compile(r"^urn:epcglobal:cbv:(?:bizstep|disp|btt|sdt|er):(.+)$")
_NUMBER_ATTRS = frozenset(
    ("value", "minValue", "maxValue", "meanValue", "sDev", "percRank", "percValue")
)


def looks_like_xml(raw: bytes) -> bool:
    """Whether a file's bytes start like an XML document (after a BOM and blanks)."""
    return raw.removeprefix(b"\xef\xbb\xbf").lstrip()[:1] == b"<"


def xml_to_document(raw: bytes, name: str) -> dict[str, Any]:
    """The EPCIS 2.0 JSON-LD document an EPCIS 2.0 or 1.2 XML document stands for.

    Raises :class:`~lottrace.errors.InvalidInput` naming the file and the
    XML line of the first problem.
    """
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        root = etree.fromstring(raw, parser)
    except etree.XMLSyntaxError as exc:
        line = exc.position[0] if exc.position else exc.lineno
        msg = str(exc.msg).split(" (line")[0].split(", line")[0]
        raise InvalidInput(f"{name}:{line}: not well-formed XML: {msg}") from None
    qname = etree.QName(root)
    if qname.localname not in ("EPCISDocument", "EPCISQueryDocument") or (
        qname.namespace not in EPCIS_XML_NS
    ):
        raise InvalidInput(
            f"{name}:{root.sourceline}: not an EPCIS 2.0 or 1.2 XML document: the root element "
            f"is {{{qname.namespace or ''}}}{qname.localname}"
        )
    reader = _Reader(name)
    body = _child(root, "EPCISBody")
    if body is None:
        raise InvalidInput(f"{name}:{root.sourceline}: EPCISDocument has no EPCISBody")
    holder = body
    query = qname.localname == "EPCISQueryDocument"
    if query:
        results = _child(body, "QueryResults", namespace=True)
        rb = _child(results, "resultsBody") if results is not None else None
        holder = rb if rb is not None else body
    event_list = _child(holder, "EventList")
    events = [] if event_list is None else reader.events(event_list)
    doc: dict[str, Any] = {
        "@context": [_CONTEXT, *([reader.prefixes] if reader.prefixes else [])],
        "type": qname.localname,
        "schemaVersion": "2.0",
        "creationDate": root.get("creationDate", "1970-01-01T00:00:00Z"),
    }
    if query:
        results_obj: dict[str, Any] = {"resultsBody": {"eventList": events}}
        if results is not None:
            qn = _child(results, "queryName")
            if qn is not None and qn.text:
                results_obj["queryName"] = qn.text.strip()
        doc["epcisBody"] = {"queryResults": results_obj}
    else:
        doc["epcisBody"] = {"eventList": events}
    return doc


def _local(el: Any) -> str:
    return str(etree.QName(el).localname)


def _child(el: Any, local: str, *, namespace: bool = False) -> Any:
    for c in el:
        if isinstance(c.tag, str) and _local(c) == local and (namespace or _is_epcis(c)):
            return c
    return None


def _is_epcis(el: Any) -> bool:
    """Whether an element belongs to EPCIS itself (no namespace, or the epcis one)."""
    ns = etree.QName(el).namespace
    return ns is None or ns in EPCIS_XML_NS


def _text(el: Any) -> str:
    return (el.text or "").strip()


def _number(text: str, name: str, line: int | None, field: str) -> int | float:
    try:
        value = float(text)
    except ValueError:
        raise InvalidInput(f"{name}:{line}: {field} {text!r} is not a number") from None
    return int(value) if value.is_integer() and re.fullmatch(r"[+-]?\d+", text) else value


def _cbv(text: str) -> str:
    m = _CBV_URN.match(text)
    return m.group(1) if m else text


class _Reader:
    def __init__(self, name: str) -> None:
        self.name = name
        self.prefixes: dict[str, str] = {}

    def events(self, event_list: Any) -> list[dict[str, Any]]:
        out = []
        for el in _elements(event_list):
            if _local(el) == "extension" and _is_epcis(el):  # 1.2: TransformationEvent, ...
                out.extend(self.events(el))
            elif _local(el) in _EVENT_TYPES and _is_epcis(el):
                out.append(self.event(el))
            else:
                raise InvalidInput(
                    f"{self.name}:{el.sourceline}: <{_local(el)}> is not an EPCIS event"
                )
        return out

    def event(self, el: Any) -> dict[str, Any]:
        ev: dict[str, Any] = {"type": _local(el)}
        self.fields(el, ev)
        return ev

    def fields(self, el: Any, into: dict[str, Any]) -> None:
        for c in _elements(el):
            local = _local(c)
            if not _is_epcis(c):
                key, value = self.extension(c)
                into[key] = _merge(into.get(key), value)
            elif local in ("extension", "baseExtension"):
                self.fields(c, into)  # 1.2 wrappers
            else:
                into[local] = self.field(c, local)

    def field(self, c: Any, local: str) -> Any:
        if local in _TEXT_LISTS:
            return [_text(i) for i in _elements(c)]
        if local in _QUANTITY_LISTS:
            return [self.quantity(q) for q in _elements(c)]
        if local in _TYPED_LISTS:
            _item, key = _TYPED_LISTS[local]
            items = []
            for i in _elements(c):
                obj: dict[str, Any] = {}
                if i.get("type") is not None:
                    obj["type"] = _cbv(i.get("type"))
                obj[key] = _text(i)
                items.append(obj)
            return items
        if local in ("readPoint", "bizLocation"):
            obj = {}
            self.fields(c, obj)
            return obj
        if local == "sensorElementList":
            return [self.sensor_element(s) for s in _elements(c)]
        if local == "persistentDisposition":
            pd: dict[str, list[str]] = {}
            for i in _elements(c):
                pd.setdefault(_local(i), []).append(_cbv(_text(i)))
            return pd
        if local in ("ilmd", "errorDeclaration"):
            obj = {}
            self.fields(c, obj)
            if local == "errorDeclaration" and "reason" in obj:
                obj["reason"] = _cbv(obj["reason"])
            return obj
        if local == "certificationInfo":
            return _text(c)
        if local in ("quantity",):
            return _number(_text(c), self.name, c.sourceline, local)
        text = _text(c)
        if local in ("bizStep", "disposition"):
            return _cbv(text)
        if len(c):
            obj = {}
            self.fields(c, obj)
            return obj
        return text

    def quantity(self, q: Any) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        for c in _elements(q):
            local = _local(c)
            text = _text(c)
            obj[local] = (
                _number(text, self.name, c.sourceline, "quantity") if local == "quantity" else text
            )
        return obj

    def sensor_element(self, s: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        reports = []
        for c in _elements(s):
            local = _local(c)
            if local == "sensorMetadata" and _is_epcis(c):
                out["sensorMetadata"] = self.attributes(c)
            elif local == "sensorReport" and _is_epcis(c):
                reports.append(self.attributes(c))
            elif not _is_epcis(c):
                key, value = self.extension(c)
                out[key] = _merge(out.get(key), value)
            elif local == "extension":
                for x in _elements(c):
                    key, value = self.extension(x)
                    out[key] = _merge(out.get(key), value)
        if reports:
            out["sensorReport"] = reports
        return out

    def attributes(self, el: Any) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        for key, value in el.attrib.items():
            q = etree.QName(key)
            if q.namespace is not None:
                name = f"{self.prefix(el, q.namespace)}:{q.localname}"
                obj[name] = value
                continue
            local = q.localname
            if local in _NUMBER_ATTRS:
                obj[local] = _number(value, self.name, el.sourceline, local)
            elif local == "booleanValue":
                obj[local] = value.strip() in ("true", "1")
            elif local == "type" and value.startswith("gs1:"):
                obj[local] = value[4:]
            else:
                obj[local] = value
        return obj

    def prefix(self, el: Any, namespace: str) -> str:
        """The JSON-LD prefix of an XML namespace, declared in ``self.prefixes``.

        A namespace of GS1's context (``urn:epcglobal:cbv:mda`` is ``cbvmda``)
        takes GS1's prefix, undeclared; an XML prefix that is a protected
        term of GS1's context but names another namespace is renamed.
        """
        bare = namespace.rstrip(":/#")
        for term, iri in PROTECTED.items():
            if iri is not None and ":" in iri and iri.rstrip(":/#") == bare:
                return term
        prefix = next((p for p, ns in (el.nsmap or {}).items() if ns == namespace and p), None)
        if prefix is None or prefix in PROTECTED:
            prefix = f"{prefix or 'ns'}{len(self.prefixes) + 1}"
        if not namespace.endswith(("/", "#", ":")):
            # JSON-LD prefixes end the IRI they start: http://ns.example.com/epcis in
            # XML is http://ns.example.com/epcis/ in GS1's JSON-LD twins.
            namespace += ":" if namespace.startswith("urn:") else "/"
        known = self.prefixes.get(prefix)
        if known is not None and known != namespace:
            prefix = f"{prefix}{len(self.prefixes) + 1}"
        self.prefixes[prefix] = namespace
        return prefix

    def extension(self, el: Any) -> tuple[str, Any]:
        q = etree.QName(el)
        key = f"{self.prefix(el, q.namespace)}:{q.localname}" if q.namespace else q.localname
        children = _elements(el)
        if not children:
            return key, _text(el)
        obj: dict[str, Any] = {}
        for c in children:
            k, v = self.extension(c)
            obj[k] = _merge(obj.get(k), v)
        return key, obj


def _elements(el: Any) -> list[Any]:
    """Child elements, comments and processing instructions left out."""
    return [c for c in el if isinstance(c.tag, str)]


def _merge(before: Any, value: Any) -> Any:
    """A repeated extension element becomes a list of its values."""
    if before is None:
        return value
    if isinstance(before, list):
        return [*before, value]
    return [before, value]
