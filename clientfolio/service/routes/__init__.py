"""The API's routes, one module per area; thin: parse, call the library, shape the answer."""

from clientfolio.service.routes import actions, customers, events, segments, system

ROUTERS = [system.router, events.router, customers.router, segments.router, actions.router]

__all__ = ["ROUTERS"]
