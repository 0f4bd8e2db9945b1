"""Pure rules of the ontology: no I/O, unit-tested without a server."""
