"""The composition root: the registry of services, the `nexus` command and `nexus up`. The only
code that imports the services, the gateway and the worker; nothing imports it."""
