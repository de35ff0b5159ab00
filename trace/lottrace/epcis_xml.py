"""The EPCIS XML binding: read EPCIS 2.0 and 1.2 XML as JSON-LD, and write it back.

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

:func:`document_to_xml` is its inverse: it writes an EPCIS 2.0 JSON-LD
document as EPCIS 2.0 XML (or 1.2, where the events allow) that GS1's XSDs
accept and that reads back to the same events.

The header is read and written too (:class:`_Header`): the SBDH's sender,
receiver and instance identifier are the JSON-LD document's ``sender``,
``receiver`` and ``instanceIdentifier`` (an SBDH that says more is kept
whole, as canonical XML text in ``epcisHeader``'s ``lt:sbdh``), and
``EPCISHeader/extension/EPCISMasterData`` is ``epcisHeader.epcisMasterData``:
each ``VocabularyElement``'s ``attribute`` elements are its ``attributes``
(``{id, attribute}``, the value text, or an object of its child elements),
its ``children/id`` its ``children``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from lxml import etree

from .contexts import PROTECTED
from .epcis_check import EPCIS_CONTEXT
from .epcis_hash import EVENT_TYPES
from .errors import InvalidInput

__all__ = [
    "EPCIS_XML_NS",
    "XmlDocument",
    "XmlExportError",
    "document_to_xml",
    "looks_like_xml",
    "xml_to_document",
]

EPCIS_XML_NS = ("urn:epcglobal:epcis:xsd:2", "urn:epcglobal:epcis:xsd:1")
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
_LT_JSON = "{https://lottrace.org/epcis/}json"
_LT_LIST = "{https://lottrace.org/epcis/}list"
_LT_EXACT = "{https://lottrace.org/epcis/}exactNamespaces"
#: ``lt:prefixed="type"`` on a sensor report: its ``type`` is written ``gs1:Angle`` in
#: JSON-LD too (GS1's XML writes every type so, its JSON-LD the bare word).
_LT_PREFIXED = "{https://lottrace.org/epcis/}prefixed"
#: ``lt:context`` on an event: the ``@context`` a JSON-LD event declares for itself.
_LT_CONTEXT = "{https://lottrace.org/epcis/}context"
_NUMBER_ATTRS = frozenset(
    ("value", "minValue", "maxValue", "meanValue", "sDev", "percRank", "percValue")
)


def looks_like_xml(raw: bytes) -> bool:
    """Whether a file's bytes start like an XML document (after a BOM and blanks)."""
    return raw.removeprefix(b"\xef\xbb\xbf").lstrip()[:1] == b"<"


def xml_to_document(raw: bytes, name: str) -> XmlDocument:
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
    if _declares(root.getroottree().docinfo) or any(
        isinstance(node, etree._Entity) for node in root.iter()
    ):
        raise InvalidInput(
            f"{name}: the document declares or uses XML entities (a DOCTYPE); an EPCIS "
            "document has none, and lottrace reads none"
        )
    qname = etree.QName(root)
    if qname.localname not in ("EPCISDocument", "EPCISQueryDocument") or (
        qname.namespace not in EPCIS_XML_NS
    ):
        raise InvalidInput(
            f"{name}:{root.sourceline}: not an EPCIS 2.0 or 1.2 XML document: the root element "
            f"is {{{qname.namespace or ''}}}{qname.localname}"
        )
    reader = _Reader(name, exact=frozenset((root.get(_LT_EXACT) or "").split()))
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
    header = _child(root, "EPCISHeader")
    head = {} if header is None else _read_header(reader, header, root.get("creationDate"))
    text = json.dumps([events, head])
    for prefix, namespace in (root.nsmap or {}).items():
        # a prefix of the root used in values (a sensor type example:Abc), not in names
        if (
            prefix
            and prefix not in PROTECTED
            and prefix not in reader.prefixes
            and f'"{prefix}:' in text
            and namespace not in (*EPCIS_XML_NS, _XSI, _LT)
        ):
            reader.prefix(root, namespace)
    doc: dict[str, Any] = {
        "@context": [EPCIS_CONTEXT, *([reader.prefixes] if reader.prefixes else [])],
        "type": qname.localname,
        "schemaVersion": "2.0",
        "creationDate": root.get("creationDate", "1970-01-01T00:00:00Z"),
        **head,
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
    root_line: int = getattr(root, "sourceline", None) or 1
    return XmlDocument(doc, root_line, reader.lines)


def _own_prefixes(context: Any) -> dict[str, str]:
    """The prefixes an event's own ``@context`` declares (OpenEPCIS's
    Namespaces_at_different_level.json has events that declare their own)."""
    out: dict[str, str] = {}
    for node in context if isinstance(context, list) else [context]:
        if isinstance(node, dict):
            out.update(
                {
                    k: v
                    for k, v in node.items()
                    if isinstance(v, str) and re.fullmatch(r"[A-Za-z_][\w.-]*", k)
                }
            )
    return out


def _declares(info: Any) -> bool:
    """Whether a DOCTYPE declares anything or names a DTD (a bare ``<!DOCTYPE x>``,
    as in GS1's masterdata_all_possible_fields.xml, declares nothing)."""
    dtd = info.internalDTD
    if dtd is None:
        return False
    return bool(list(dtd.entities()) or list(dtd.elements()) or info.system_url or info.public_id)


class XmlDocument(dict[str, Any]):
    """The JSON-LD document an XML file stands for, with the XML lines of its parts.

    A plain ``dict`` to everything that reads the document; :meth:`line`
    turns a JSON path into the document (``$.epcisBody.eventList[3].eventTime``)
    into the line of the XML element it came from, so that a problem found
    after conversion names the XML line.
    """

    def __init__(self, doc: dict[str, Any], root_line: int, lines: list[dict[str, int]]):
        super().__init__(doc)
        self.root_line = root_line
        self.event_lines = lines

    def line(self, path: str) -> tuple[int, str]:
        """The XML line of a JSON path and the part of the path within its event
        (``eventTime``; empty for the event itself; the whole path outside events)."""
        m = _EVENT_PATH.match(path)
        if m is None or int(m.group(1)) >= len(self.event_lines):
            return self.root_line, path
        lines = self.event_lines[int(m.group(1))]
        rest = m.group(2).lstrip(".")
        field = re.split(r"[.\[]", rest, maxsplit=1)[0]
        return lines.get(field, lines[""]), rest


_EVENT_PATH = re.compile(r"^\$\.epcisBody(?:\.queryResults\.resultsBody)?\.eventList\[(\d+)\](.*)$")


def _fields_of(el: Any) -> list[Any]:
    """An event element's field elements, those in 1.2's extension wrappers too."""
    out = []
    for c in _elements(el):
        if _is_epcis(c) and _local(c) in ("extension", "baseExtension"):
            out.extend(_fields_of(c))
        else:
            out.append(c)
    return out


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
    def __init__(self, name: str, exact: frozenset[str] = frozenset()) -> None:
        self.name = name
        self.prefixes: dict[str, str] = {}
        self.exact = exact  # namespaces to take as written (see document_to_xml)
        self.lines: list[dict[str, int]] = []  # per event: its line, and its fields' lines
        self.own: dict[str, str] = {}  # the prefixes of the event being read's own @context

    def events(self, event_list: Any) -> list[dict[str, Any]]:
        out = []
        for el in _elements(event_list):
            if _local(el) == "extension" and _is_epcis(el):  # 1.2: TransformationEvent, ...
                out.extend(self.events(el))
            elif _local(el) in EVENT_TYPES and _is_epcis(el):
                out.append(self.event(el))
            else:
                raise InvalidInput(
                    f"{self.name}:{el.sourceline}: <{_local(el)}> is not an EPCIS event"
                )
        return out

    def event(self, el: Any) -> dict[str, Any]:
        ev: dict[str, Any] = {"type": _local(el)}
        own = el.get(_LT_CONTEXT)
        if own is not None:  # lottrace's export: the event's own @context, as JSON
            try:
                ev["@context"] = json.loads(own)
            except ValueError:
                raise InvalidInput(f"{self.name}:{el.sourceline}: lt:context is not JSON") from None
            self.own = _own_prefixes(ev["@context"])
        try:
            self.fields(el, ev)
        finally:
            self.own = {}
        lines = {"": el.sourceline}
        for c in _fields_of(el):
            q = etree.QName(c)
            for key in (q.localname, *(k for k in ev if k.endswith(":" + q.localname))):
                if key in ev:
                    lines.setdefault(key, c.sourceline)
        self.lines.append(lines)
        return ev

    def fields(self, el: Any, into: dict[str, Any]) -> None:
        for c in _elements(el):
            local = _local(c)
            if not _is_epcis(c):
                self.put(into, c)
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
                self.put(out, c)
            elif local == "extension":
                for x in _elements(c):
                    self.put(out, x)
        if reports:
            out["sensorReport"] = reports
        return out

    def attributes(self, el: Any) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        prefixed = el.get(_LT_PREFIXED) == "type"  # lottrace's export: gs1:Angle as written
        for key, value in el.attrib.items():
            q = etree.QName(key)
            if key == _LT_PREFIXED:
                continue
            if q.namespace is not None:
                name = f"{self.prefix(el, q.namespace)}:{q.localname}"
                obj[name] = value
                continue
            local = q.localname
            if local in _NUMBER_ATTRS:
                obj[local] = _number(value, self.name, el.sourceline, local)
            elif local == "booleanValue":
                obj[local] = value.strip() in ("true", "1")
            elif local == "type" and value.startswith("gs1:") and not prefixed:
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
        for own, own_iri in self.own.items():  # the event's own: not the document's
            if own_iri == namespace:
                return own
        bare = namespace.rstrip(":/#")
        for term, iri in PROTECTED.items():
            if iri is not None and ":" in iri and iri.rstrip(":/#") == bare:
                if (el.nsmap or {}).get(term) == iri:  # declared as GS1's context does
                    self.prefixes[term] = iri
                return term
        prefix = next((p for p, ns in (el.nsmap or {}).items() if ns == namespace and p), None)
        if prefix is None or prefix in PROTECTED:
            prefix = f"{prefix or 'ns'}{len(self.prefixes) + 1}"
        if not namespace.endswith(("/", "#", ":")) and namespace not in self.exact:
            # JSON-LD prefixes end the IRI they start: http://ns.example.com/epcis in
            # XML is http://ns.example.com/epcis/ in GS1's JSON-LD twins.
            namespace += ":" if namespace.startswith("urn:") else "/"
        known = self.prefixes.get(prefix)
        if known is not None and known != namespace:
            prefix = f"{prefix}{len(self.prefixes) + 1}"
        self.prefixes[prefix] = namespace
        return prefix

    def put(self, into: dict[str, Any], el: Any) -> None:
        """Add an extension element to the object it belongs to.

        A repeated element becomes an array; an element marked ``lt:list``
        (lottrace's XML export) is an array item even alone, and
        ``lt:list="0"`` an empty array.
        """
        key, value = self.extension(el)
        listed = el.get(_LT_LIST)
        if listed == "0":
            into.setdefault(key, [])
        elif listed == "1":
            before = into.get(key)
            into[key] = [*before, value] if isinstance(before, list) else [value]
        else:
            into[key] = _merge(into.get(key), value)

    def extension(self, el: Any) -> tuple[str, Any]:
        q = etree.QName(el)
        key = f"{self.prefix(el, q.namespace)}:{q.localname}" if q.namespace else q.localname
        children = _elements(el)
        if not children:
            return key, self.typed(el)
        obj: dict[str, Any] = {}
        for c in children:
            self.put(obj, c)
        return key, obj

    def typed(self, el: Any) -> Any:
        """An extension element's text, as the JSON type ``lt:json`` names (if any)."""
        kind = el.get(_LT_JSON)
        text = _text(el)
        if kind is None:
            return text
        if kind == "null":
            return None
        if kind == "bool" and text in ("true", "false"):
            return text == "true"
        try:
            if kind == "int":
                return int(text)
            if kind == "float":
                return float(text)
        except ValueError:
            pass
        raise InvalidInput(
            f"{self.name}:{el.sourceline}: lt:json={kind!r} does not fit {text!r} "
            "(give int, float, bool or null)"
        )


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


# --------------------------------------------------------------------------- write

_V2, _V1 = EPCIS_XML_NS
_XSI = "http://www.w3.org/2001/XMLSchema-instance"
#: lottrace's namespace: the ``lt:json`` and ``lt:list`` attributes on extension
#: elements keep the JSON types XML text loses (see :func:`document_to_xml`).
_LT = "https://lottrace.org/epcis/"
_GS1_VOC = "https://gs1.org/voc/"
_BASE = ("eventTime", "recordTime", "eventTimeZoneOffset", "eventID", "errorDeclaration")
_WHERE = ("bizStep", "disposition", "readPoint", "bizLocation")
_MOVES = ("sourceList", "destinationList", "sensorElementList", "persistentDisposition")
#: the EPCIS 2.0 XSD's sequence of each event type (after the base fields).
_ORDER_2 = {
    "ObjectEvent": (
        "epcList",
        "action",
        *_WHERE,
        "bizTransactionList",
        "quantityList",
        *_MOVES,
        "ilmd",
    ),
    "AggregationEvent": (
        "parentID",
        "childEPCs",
        "action",
        *_WHERE,
        "bizTransactionList",
        "childQuantityList",
        *_MOVES,
    ),
    "TransactionEvent": (
        "bizTransactionList",
        "parentID",
        "epcList",
        "action",
        *_WHERE,
        "quantityList",
        *_MOVES,
    ),
    "TransformationEvent": (
        "inputEPCList",
        "inputQuantityList",
        "outputEPCList",
        "outputQuantityList",
        "transformationID",
        *_WHERE,
        "bizTransactionList",
        *_MOVES,
        "ilmd",
    ),
    "AssociationEvent": (
        "parentID",
        "childEPCs",
        "childQuantityList",
        "action",
        *_WHERE,
        "bizTransactionList",
        *_MOVES,
    ),
}
#: EPCIS 1.2: (the event's own sequence, its ``extension``'s sequence, required lists).
_ORDER_1 = {
    "ObjectEvent": (
        ("epcList", "action", *_WHERE, "bizTransactionList"),
        ("quantityList", "sourceList", "destinationList", "ilmd"),
        ("epcList",),
    ),
    "AggregationEvent": (
        ("parentID", "childEPCs", "action", *_WHERE, "bizTransactionList"),
        ("childQuantityList", "sourceList", "destinationList"),
        ("childEPCs",),
    ),
    "TransactionEvent": (
        ("bizTransactionList", "parentID", "epcList", "action", *_WHERE),
        ("quantityList", "sourceList", "destinationList"),
        ("epcList",),
    ),
    "TransformationEvent": (
        (
            "inputEPCList",
            "inputQuantityList",
            "outputEPCList",
            "outputQuantityList",
            "transformationID",
            *_WHERE,
            "bizTransactionList",
            "sourceList",
            "destinationList",
            "ilmd",
        ),
        (),
        (),
    ),
}
#: JSON field -> the CBV vocabulary its bare words belong to.
_CBV_OF = {"bizStep": "bizstep", "disposition": "disp", "reason": "er"}
_TYPED_CBV = {"bizTransactionList": "btt", "sourceList": "sdt", "destinationList": "sdt"}


class XmlExportError(InvalidInput):
    """An event that the chosen XML binding cannot carry."""


def document_to_xml(doc: dict[str, Any], *, version: str = "2.0") -> bytes:
    """The EPCIS XML (``version`` ``"2.0"`` or ``"1.2"``) of an EPCIS 2.0 JSON-LD document.

    The inverse of :func:`xml_to_document`: reading the bytes back gives the
    same events (the same Event Hash IDs, the same lottrace records). The
    prefixes of the document's ``@context`` become XML namespace prefixes.

    - CBV words become the CBV URNs XML uses (``shipping`` is
      ``urn:epcglobal:cbv:bizstep:shipping``), sensor types ``gs1:`` names;
    - an extension value that is not a string keeps its JSON type in an
      ``lt:json`` attribute (``int``, ``float``, ``bool``, ``null``), and the
      items of an array are marked ``lt:list="1"`` (an empty array is one
      empty element marked ``lt:list="0"``), so that one-item arrays stay
      arrays; other readers see the text and can ignore the attributes;
    - a prefix whose IRI does not end in ``/``, ``#`` or ``:`` is listed in
      the root's ``lt:exactNamespaces``, so that the reader does not add
      the ``/`` it adds to other XML namespaces.

    Raises :class:`XmlExportError` naming the first event EPCIS 1.2 cannot
    carry (an AssociationEvent, sensor data, ``persistentDisposition``,
    ``certificationInfo``), or a value XML cannot hold.
    """
    if version not in ("2.0", "1.2"):
        raise XmlExportError(f"--xml-version {version!r}: give 2.0 or 1.2")
    context: dict[str, str] = {}
    for node in doc["@context"] if isinstance(doc["@context"], list) else [doc["@context"]]:
        if isinstance(node, dict):
            context.update({k: v for k, v in node.items() if isinstance(v, str)})
    writer = _Writer(context, version)
    return writer.document(doc)


class _Writer:
    def __init__(self, context: dict[str, str], version: str) -> None:
        self.v1 = version == "1.2"
        self.ns = _V1 if self.v1 else _V2
        self.namespaces: dict[str, str] = {}
        for prefix, iri in context.items():
            if re.fullmatch(r"[A-Za-z_][\w.-]*", prefix) and prefix not in ("xml", "xsi"):
                self.namespaces[prefix] = iri
        self.where = ""

    def document(self, doc: dict[str, Any]) -> bytes:
        body = doc["epcisBody"]
        events = (
            body["queryResults"]["resultsBody"]["eventList"]
            if "queryResults" in body
            else body["eventList"]
        )
        nsmap: dict[str | None, str] = {"epcis": self.ns, "lt": _LT, "gs1": _GS1_VOC}
        for prefix, iri in self.namespaces.items():
            if iri != _LT and prefix not in nsmap:
                nsmap[prefix] = iri
        root = etree.Element(
            f"{{{self.ns}}}EPCISDocument",
            nsmap=nsmap,  # type: ignore[arg-type]
            schemaVersion="1.2" if self.v1 else "2.0",
            creationDate=doc["creationDate"],
        )
        exact = sorted(iri for iri in self.namespaces.values() if not iri.endswith(("/", "#", ":")))
        if exact:  # JSON-LD prefixes that end otherwise: read back as written
            root.set(_LT_EXACT, " ".join(exact))
        _write_header(self, root, doc)
        event_list = etree.SubElement(etree.SubElement(root, "EPCISBody"), "EventList")
        for i, event in enumerate(events):
            self.where = f"event {i + 1} ({event.get('type')} {event.get('eventID', '')})"
            if self.v1 and event["type"] == "TransformationEvent":
                holder = etree.SubElement(event_list, "extension")
            else:
                holder = event_list
            self.event(holder, event)
        out: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
        return out

    def refuse(self, what: str) -> XmlExportError:
        return XmlExportError(
            f"cannot write EPCIS 1.2 XML: {self.where} has {what}, which EPCIS 1.2 cannot carry"
        )

    def event(self, parent: Any, event: dict[str, Any]) -> None:
        kind = event["type"]
        if self.v1:
            if kind not in _ORDER_1:
                raise self.refuse(f"type {kind}")
            own, ext, required = _ORDER_1[kind]
            for key in ("certificationInfo", "sensorElementList", "persistentDisposition"):
                if key in event:
                    raise self.refuse(key)
        else:
            own, ext, required = _ORDER_2[kind], (), ()
        known = {"type", *_BASE, "certificationInfo", *own, *ext}
        for key in event:
            if key not in known and ":" not in key and not key.startswith("@"):
                raise XmlExportError(
                    f"cannot write EPCIS {'1.2' if self.v1 else '2.0'} XML: {self.where} "
                    f"has {key!r}, which a {kind} does not have in XML"
                )
        prefixes = _own_prefixes(event.get("@context"))  # declared on the event element
        el = etree.SubElement(parent, kind, nsmap=prefixes or None)
        if "@context" in event:
            el.set(_LT_CONTEXT, json.dumps(event["@context"], separators=(",", ":")))
        saved = self.namespaces
        self.namespaces = {**saved, **prefixes}
        try:
            for key in ("eventTime", "recordTime", "eventTimeZoneOffset"):
                if key in event:
                    self.field(el, key, event[key])
            if self.v1:
                if "eventID" in event or "errorDeclaration" in event:
                    base = etree.SubElement(el, "baseExtension")
                    for key in ("eventID", "errorDeclaration"):
                        if key in event:
                            self.field(base, key, event[key])
            else:
                for key in ("eventID", "errorDeclaration", "certificationInfo"):
                    if key in event:
                        self.field(el, key, _one_certification(event[key], self.where))
            for key in own:
                if key in event:
                    self.field(el, key, event[key])
                elif key in required:
                    etree.SubElement(el, key)
            if any(key in event for key in ext):
                holder = etree.SubElement(el, "extension")
                for key in ext:
                    if key in event:
                        self.field(holder, key, event[key])
            self.extensions(el, event)
        finally:
            self.namespaces = saved

    def field(self, parent: Any, key: str, value: Any) -> None:
        if key in _TEXT_LISTS:
            el = etree.SubElement(parent, key)
            for item in value:
                self.text(etree.SubElement(el, _TEXT_LISTS[key]), item)
        elif key in _QUANTITY_LISTS:
            el = etree.SubElement(parent, key)
            for q in value:
                qe = etree.SubElement(el, "quantityElement")
                for k in ("epcClass", "quantity", "uom"):
                    if k in q:
                        self.text(etree.SubElement(qe, k), q[k])
        elif key in _TYPED_LISTS:
            item_name, text_key = _TYPED_LISTS[key]
            el = etree.SubElement(parent, key)
            for item in value:
                ie = etree.SubElement(el, item_name)
                if "type" in item:
                    ie.set("type", _cbv_urn(_TYPED_CBV[key], item["type"]))
                self.text(ie, item[text_key])
        elif key in ("readPoint", "bizLocation"):
            el = etree.SubElement(parent, key)
            self.text(etree.SubElement(el, "id"), value["id"])
            self.extensions(el, value)
        elif key == "sensorElementList":
            el = etree.SubElement(parent, key)
            for element in value:
                self.sensor_element(etree.SubElement(el, "sensorElement"), element)
        elif key == "persistentDisposition":
            el = etree.SubElement(parent, key)
            for k in ("unset", "set"):
                for item in value.get(k, []):
                    self.text(etree.SubElement(el, k), _cbv_urn("disp", item))
        elif key == "ilmd":
            self.extensions(etree.SubElement(parent, key), value)
        elif key == "errorDeclaration":
            el = etree.SubElement(parent, key)
            self.text(etree.SubElement(el, "declarationTime"), value["declarationTime"])
            if "reason" in value:
                self.text(etree.SubElement(el, "reason"), _cbv_urn("er", value["reason"]))
            if "correctiveEventIDs" in value:
                self.field(el, "correctiveEventIDs", value["correctiveEventIDs"])
            self.extensions(el, value)
        elif key in _CBV_OF:
            self.text(etree.SubElement(parent, key), _cbv_urn(_CBV_OF[key], value))
        else:
            self.text(etree.SubElement(parent, key), value)

    def sensor_element(self, el: Any, element: dict[str, Any]) -> None:
        if "sensorMetadata" in element:
            self.attributes(etree.SubElement(el, "sensorMetadata"), element["sensorMetadata"])
        for report in element.get("sensorReport", []):
            self.attributes(etree.SubElement(el, "sensorReport"), report)
        self.extensions(el, element)

    def attributes(self, el: Any, obj: dict[str, Any]) -> None:
        for key, value in obj.items():
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, float):
                text = repr(value)
            elif key == "type" and isinstance(value, str) and ":" not in value:
                text = f"gs1:{value}"  # a GS1 sensor type: gs1:Temperature
            elif key == "type" and isinstance(value, str) and value.startswith("gs1:"):
                text = value
                el.set(_LT_PREFIXED, "type")
            else:
                text = str(value)
            self.set(el, self.qname(key) if ":" in key else key, text)

    def extensions(self, el: Any, obj: dict[str, Any]) -> None:
        """Write an object's extension keys (``prefix:name``) as elements."""
        for key, value in obj.items():
            if ":" in key and not key.startswith("@"):
                self.extension(el, self.qname(key), value)

    def extension(self, parent: Any, tag: str, value: Any) -> None:
        if isinstance(value, list):
            if not value:
                etree.SubElement(parent, tag).set(f"{{{_LT}}}list", "0")
            for item in value:
                self.extension(parent, tag, item)
                parent[-1].set(f"{{{_LT}}}list", "1")
            return
        el = etree.SubElement(parent, tag)
        if isinstance(value, dict):
            for key, v in value.items():
                if key.startswith("@"):
                    raise XmlExportError(
                        f"cannot write XML: {self.where} has a JSON-LD keyword {key!r} "
                        f"in {etree.QName(tag).localname}"
                    )
                self.extension(el, self.qname(key) if ":" in key else key, v)
        elif value is None:
            el.set(f"{{{_LT}}}json", "null")
        elif isinstance(value, bool):
            el.set(f"{{{_LT}}}json", "bool")
            el.text = "true" if value else "false"
        elif isinstance(value, int):
            el.set(f"{{{_LT}}}json", "int")
            el.text = str(value)
        elif isinstance(value, float):
            el.set(f"{{{_LT}}}json", "float")
            el.text = repr(value)
        else:
            self.text(el, value)

    def qname(self, key: str) -> str:
        prefix, local = key.split(":", 1)
        iri = self.namespaces.get(prefix)
        if iri is None:
            iri = PROTECTED.get(prefix)
        if iri is None or not re.fullmatch(r"[A-Za-z_][\w.-]*", local):
            raise XmlExportError(
                f"cannot write XML: {self.where} has {key!r}, which is not an XML name "
                "in a declared namespace"
            )
        return f"{{{iri}}}{local}"

    def text(self, el: Any, value: Any) -> None:
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, float):
            value = repr(value)
        try:
            el.text = str(value)
        except ValueError:
            raise XmlExportError(
                f"cannot write XML: {self.where}: {value!r} holds a character XML cannot carry"
            ) from None

    def set(self, el: Any, name: str, text: str) -> None:
        try:
            el.set(name, text)
        except ValueError:
            raise XmlExportError(
                f"cannot write XML: {self.where}: {text!r} holds a character XML cannot carry"
            ) from None


def _one_certification(value: Any, where: str) -> Any:
    """``certificationInfo`` as 2.0 XML's single element: a one-item array is its item
    (the same Event Hash ID); more than one cannot be written."""
    if not isinstance(value, list):
        return value
    if len(value) == 1:
        return value[0]
    raise XmlExportError(
        f"cannot write EPCIS 2.0 XML: {where} has {len(value)} certificationInfo values, "
        "and EPCIS XML has one"
    )


def _cbv_urn(vocabulary: str, value: Any) -> str:
    """A bare CBV word as its URN (``shipping`` -> ``urn:epcglobal:cbv:bizstep:shipping``)."""
    text = str(value)
    return text if ":" in text else f"urn:epcglobal:cbv:{vocabulary}:{text}"


# --------------------------------------------------------------------------- header

_SBDH = "http://www.unece.org/cefact/namespaces/StandardBusinessDocumentHeader"
#: JSON-LD document fields an EPCISHeader carries as ``lt:`` attributes when no SBDH
#: can (an SBDH needs a sender, a receiver and an instance identifier).
_LT_FIELDS = ("id", "sender", "receiver", "instanceIdentifier")


def _strip(el: Any) -> Any:
    """A copy of an element without comments and whitespace-only text, for comparing."""
    copy = etree.fromstring(etree.tostring(el))
    for node in list(copy.iter()):
        if not isinstance(node.tag, str):
            parent = node.getparent()
            if parent is not None:
                tail = node.tail
                prev = node.getprevious()
                parent.remove(node)
                if tail and tail.strip():
                    if prev is not None:
                        prev.tail = (prev.tail or "") + tail
                    else:
                        parent.text = (parent.text or "") + tail
            continue
        if node.text is not None and not node.text.strip():
            node.text = None
        if node.tail is not None and not node.tail.strip():
            node.tail = None
    return copy


def _c14n(el: Any) -> str:
    """An element as exclusive canonical XML, whitespace between elements left out."""
    out: bytes = etree.tostring(_strip(el), method="c14n", exclusive=True, with_comments=False)
    return out.decode()


def _sbdh_element(sender: str, receiver: str, instance: str, created: str, v1: bool) -> Any:
    """The SBDH lottrace writes for a sender, a receiver and an instance identifier."""
    sbdh = etree.Element(f"{{{_SBDH}}}StandardBusinessDocumentHeader", nsmap={"sbdh": _SBDH})

    def sub(parent: Any, name: str, text: str | None = None) -> Any:
        el = etree.SubElement(parent, f"{{{_SBDH}}}{name}")
        if text is not None:
            el.text = text
        return el

    sub(sbdh, "HeaderVersion", "1.0")
    sub(sub(sbdh, "Sender"), "Identifier", sender)
    sub(sub(sbdh, "Receiver"), "Identifier", receiver)
    ident = sub(sbdh, "DocumentIdentification")
    sub(ident, "Standard", "EPCglobal")
    sub(ident, "TypeVersion", "1.0" if v1 else "2.0")
    sub(ident, "InstanceIdentifier", instance)
    sub(ident, "Type", "Events")
    sub(ident, "CreationDateAndTime", created)
    return sbdh


def _read_header(reader: _Reader, header: Any, created: str | None) -> dict[str, Any]:
    """The JSON-LD document fields an ``EPCISHeader`` stands for."""
    out: dict[str, Any] = {}
    epcis_header: dict[str, Any] = {}
    for key, value in header.attrib.items():
        q = etree.QName(key)
        if q.namespace == _LT and q.localname in _LT_FIELDS:
            out[q.localname] = value
        elif q.namespace == _LT:
            epcis_header[_lt_key(reader, header, q.localname)] = value
        elif q.namespace is not None:
            epcis_header[f"{reader.prefix(header, q.namespace)}:{q.localname}"] = value
    sbdh = _child(header, "StandardBusinessDocumentHeader", namespace=True)
    if sbdh is not None:
        found: dict[str, str] = {}
        for path, key in (
            ("sbdh:Sender/sbdh:Identifier", "sender"),
            ("sbdh:Receiver/sbdh:Identifier", "receiver"),
            ("sbdh:DocumentIdentification/sbdh:InstanceIdentifier", "instanceIdentifier"),
        ):
            el = sbdh.find(path, {"sbdh": _SBDH})
            if el is not None and _text(el):
                found[key] = _text(el)
        out.update(found)
        v1 = etree.QName(header.getparent()).namespace == _V1
        ours = None
        if len(found) == 3 and created is not None:
            ours = _sbdh_element(
                found["sender"], found["receiver"], found["instanceIdentifier"], created, v1
            )
        if ours is None or _c14n(ours) != _c14n(sbdh):  # more than lottrace writes: keep it
            epcis_header[_lt_key(reader, header, "sbdh")] = _c14n(sbdh)
    ext = _child(header, "extension")
    master = _child(ext, "EPCISMasterData") if ext is not None else None
    vlist = _child(master, "VocabularyList") if master is not None else None
    if vlist is not None:
        vocabularies = []
        for v in _elements(vlist):
            vocabulary: dict[str, Any] = {"type": v.get("type", "")}
            elist = _child(v, "VocabularyElementList")
            elements = [] if elist is None else [_read_element(reader, e) for e in _elements(elist)]
            vocabulary["vocabularyElementList"] = elements
            vocabularies.append(vocabulary)
        epcis_header["epcisMasterData"] = {"vocabularyList": vocabularies}
    if epcis_header:
        out["epcisHeader"] = epcis_header
    return out


def _lt_key(reader: _Reader, el: Any, name: str) -> str:
    """``lt:NAME``, the ``lt`` prefix declared for lottrace's namespace (if free)."""
    if reader.prefixes.setdefault("lt", _LT) == _LT:
        return f"lt:{name}"
    return f"{reader.prefix(el, _LT)}:{name}"


def _read_element(reader: _Reader, el: Any) -> dict[str, Any]:
    element: dict[str, Any] = {"id": el.get("id", "")}
    for key, value in el.attrib.items():
        q = etree.QName(key)
        if q.namespace is not None:
            element[f"{reader.prefix(el, q.namespace)}:{q.localname}"] = value
    attributes: list[dict[str, Any]] = []
    listed: dict[str, Any] = {}
    for c in _elements(el):
        local = _local(c)
        if local == "attribute" and _is_epcis(c):
            value = _read_attribute_value(reader, c)
            mark = c.get(_LT_LIST)
            ident = c.get("id", "")
            if mark in ("0", "1"):  # lottrace's export: the items of one array value
                before = listed.get(ident)
                if before is None:
                    before = listed[ident] = {"id": ident, "attribute": []}
                    attributes.append(before)
                if mark == "1":
                    before["attribute"].append(value)
                continue
            attr: dict[str, Any] = {"id": ident}
            if value is not None:
                attr["attribute"] = value
            attributes.append(attr)
        elif local == "children" and _is_epcis(c):
            element["children"] = [_text(i) for i in _elements(c)]
        elif local == "extension" and _is_epcis(c):
            for x in _elements(c):
                reader.put(element, x)
        elif not _is_epcis(c):
            reader.put(element, c)
    if attributes:
        element["attributes"] = attributes
    return element


def _read_attribute_value(reader: _Reader, c: Any) -> Any:
    children = _elements(c)
    if not children:
        if c.get(_LT_JSON) is None and not _text(c):
            return None  # an attribute without a value
        return reader.typed(c)
    obj: dict[str, Any] = {}
    for x in children:
        reader.put(obj, x)
    return obj


def _write_header(writer: _Writer, root: Any, doc: dict[str, Any]) -> None:
    epcis_header = doc.get("epcisHeader")
    epcis_header = dict(epcis_header) if isinstance(epcis_header, dict) else {}
    fields = {k: doc[k] for k in _LT_FIELDS if isinstance(doc.get(k), str)}
    if not fields and not epcis_header:
        return
    writer.where = "the header"
    header = etree.SubElement(root, "EPCISHeader")
    sbdh_key = next(
        (k for k in epcis_header if k.endswith(":sbdh") and writer.namespaces.get(k[:-5]) == _LT),
        None,
    )
    master = epcis_header.pop("epcisMasterData", None)
    if sbdh_key is not None:
        text = epcis_header.pop(sbdh_key)
        parser = etree.XMLParser(resolve_entities=False, no_network=True)
        try:
            header.append(etree.fromstring(str(text).encode(), parser))
        except etree.XMLSyntaxError:
            raise XmlExportError(f"cannot write XML: the header's {sbdh_key} is not XML") from None
        for key in ("sender", "receiver", "instanceIdentifier"):
            fields.pop(key, None)  # in the SBDH
    elif all(k in fields for k in ("sender", "receiver", "instanceIdentifier")):
        header.append(
            _sbdh_element(
                fields.pop("sender"),
                fields.pop("receiver"),
                fields.pop("instanceIdentifier"),
                doc["creationDate"],
                writer.v1,
            )
        )
    for key, value in fields.items():
        writer.set(header, f"{{{_LT}}}{key}", value)
    for key, value in epcis_header.items():
        if ":" not in key or not isinstance(value, str):
            raise XmlExportError(
                f"cannot write XML: the header's {key!r} is not an extension attribute (text)"
            )
        writer.set(header, writer.qname(key), value)
    if not isinstance(master, dict) or not master.get("vocabularyList"):
        return
    vlist = etree.SubElement(
        etree.SubElement(etree.SubElement(header, "extension"), "EPCISMasterData"),
        "VocabularyList",
    )
    for i, vocabulary in enumerate(master["vocabularyList"]):
        writer.where = f"vocabulary {i + 1} of the master data"
        v = etree.SubElement(vlist, "Vocabulary")
        writer.set(v, "type", str(vocabulary.get("type", "")))
        elements = vocabulary.get("vocabularyElementList") or []
        if not elements:
            continue
        elist = etree.SubElement(v, "VocabularyElementList")
        for element in elements:
            _write_element(writer, etree.SubElement(elist, "VocabularyElement"), element)


def _write_element(writer: _Writer, el: Any, element: dict[str, Any]) -> None:
    writer.set(el, "id", str(element.get("id", "")))
    for attr in element.get("attributes") or []:
        ident = str(attr.get("id", ""))
        if "attribute" not in attr:
            writer.set(etree.SubElement(el, "attribute"), "id", ident)
            continue
        value = attr["attribute"]
        if isinstance(value, list):  # an array value: one element per item, marked
            if not value:
                a = etree.SubElement(el, "attribute")
                writer.set(a, "id", ident)
                a.set(_LT_LIST, "0")
            for item in value:
                a = etree.SubElement(el, "attribute")
                writer.set(a, "id", ident)
                a.set(_LT_LIST, "1")
                _write_value(writer, a, item)
            continue
        a = etree.SubElement(el, "attribute")
        writer.set(a, "id", ident)
        _write_value(writer, a, value)
    if "children" in element:
        children = etree.SubElement(el, "children")
        for child in element["children"]:
            writer.text(etree.SubElement(children, "id"), child)
    for key, value in element.items():
        if key in ("id", "attributes", "children"):
            continue
        if ":" not in key or key.startswith("@"):
            raise XmlExportError(
                f"cannot write XML: {writer.where}: element {element.get('id')!r} has {key!r}"
            )
        if isinstance(value, str) and writer.namespaces.get(key.split(":")[0]) == _LT:
            writer.set(el, writer.qname(key), value)  # lt:time: an attribute
        else:
            writer.extension(el, writer.qname(key), value)


def _write_value(writer: _Writer, a: Any, value: Any) -> None:
    if isinstance(value, dict):
        for key, v in value.items():
            writer.extension(a, writer.qname(key) if ":" in key else key, v)
        return
    # a scalar: as an extension element's text, with lt:json for a non-string
    tmp = etree.Element("tmp")
    writer.extension(tmp, "v", value)
    made = tmp[0]
    a.text = made.text
    for k, v in made.attrib.items():
        a.set(k, v)
