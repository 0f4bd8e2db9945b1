"""The gateway's HTTP port (DESIGN §2), for browsers and anything that speaks plain HTTP: every RPC
over Connect and gRPC-Web, task events as Server-Sent Events, artifact downloads and the web
console, all through the gRPC servicer's own methods (`router.FrontDoor` is the ASGI app)."""

from gateway.http.router import FrontDoor

__all__ = ["FrontDoor"]
