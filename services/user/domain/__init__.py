"""Pure rules of the User service: no I/O, unit-tested without a server."""
