"""Every SQL statement of the ontology service (SQLAlchemy Core on the `ontology` role): the
tables in `tables`, one module per resource, and the snapshot every agent carries."""
