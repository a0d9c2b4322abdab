"""Standard Webhooks on segment entry and exit: endpoints, signing, SSRF checks and delivery."""

from clientfolio.service.webhooks.delivery import SPEC_SCHEDULE, DeliveryError, WebhookWorker, deliveries
from clientfolio.service.webhooks.endpoints import (
    Endpoint, EndpointError, add_endpoint, disable_endpoint, enable_endpoint, get_endpoint, list_endpoints,
    rotate_secret, set_allowed, store_policy, valid_secrets,
)
from clientfolio.service.webhooks.signing import new_secret, sign_headers, signature
from clientfolio.service.webhooks.ssrf import Policy, UnsafeURLError, resolve

__all__ = [
    "SPEC_SCHEDULE", "DeliveryError", "Endpoint", "EndpointError", "Policy", "UnsafeURLError", "WebhookWorker",
    "add_endpoint", "deliveries", "disable_endpoint", "enable_endpoint", "get_endpoint", "list_endpoints",
    "new_secret", "resolve", "rotate_secret", "set_allowed", "sign_headers", "signature", "store_policy",
    "valid_secrets",
]
