"""The always-on service: one ASGI app (REST API under /v1) over many shops' stores, each sealed off by API key, with webhook delivery."""
