"""What crosses process boundaries besides the protos: the rules that the services, the gateway
and workers must agree on (step actions and templates, the step graph, lease bounds, a skill's
first plan). Below the services and the worker; imports only the kit and the generated stubs."""
