"""The kit: the plumbing every Nexus process shares, written once (configuration, database,
server bootstrap, auth, errors, validation, paging). It names no service: services describe
themselves with a `spec.ServiceSpec`."""
