"""lottrace: a traceability ledger for coffee lots.

Every checkpoint of a lot's journey, from harvest to export at Paita, is an
immutable event in an append-only, hash-chained SQLite log. Modules, from the
bottom up (each imports only those above it in this list):

- :mod:`lottrace.errors`   the exception tree
- :mod:`lottrace.events`   the event models and their canonical hash
- :mod:`lottrace.rules`    the rules checked on append, and lot state
- :mod:`lottrace.ledger`   the SQLite log and derived tables (all the SQL)
- :mod:`lottrace.graph`    lineage sub-graphs of one lot (networkx)
- :mod:`lottrace.provenance`, :mod:`lottrace.compliance`, :mod:`lottrace.delays`, :mod:`lottrace.timeline`  the answers
- :mod:`lottrace.readers`  JSON Lines, JSON and CSV input
- :mod:`lottrace.epcis_hash` the CBV 2.0 EPCIS Event Hash ID
- :mod:`lottrace.schemas`  JSON Schema and docs generated from the models
- :mod:`lottrace.demo`     the bundled sample season
- :mod:`lottrace.cli`      the ``lottrace`` command

Kept light on purpose: importing :mod:`lottrace` loads nothing heavy.
"""

__version__ = "0.1.0"
