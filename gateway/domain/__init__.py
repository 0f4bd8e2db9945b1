"""Pure rules of the gateway's compositions: no I/O, tested without a server."""
