"""Where a webhook may be sent: never, unless the operator says so, into the operator's own network.

A webhook URL is typed by a shop's user, and the service then makes requests to it from inside
the operator's network.  Without a check, ``http://169.254.169.254/`` (the cloud metadata
service), ``http://127.0.0.1:5432`` or ``http://10.0.0.7/admin`` become requests the service
makes on the user's behalf (server-side request forgery).  So:

- only ``http`` and ``https`` URLs, without user names or passwords in them;
- the host is resolved and EVERY address it resolves to must be public (not private, loopback,
  link-local, multicast, reserved, unspecified or otherwise non-global);
- the check runs when an endpoint is added and again before every delivery (DNS can change),
  and the request then goes to the address that was checked (no second lookup to rebind);
- redirects are never followed (a public URL could redirect to a private one).

The operator relaxes it with a :class:`Policy`: ``allow_private`` admits private networks and
loopback (a CRM on the same LAN); ``allow`` lists networks (``127.0.0.0/8``, ``fd00::/8``) or
host names admitted whatever they resolve to.  Link-local (the metadata service), multicast and
reserved addresses need an explicit network in ``allow``.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from clientfolio.core.errors import ClientfolioError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
ALLOW_KEY = "webhooks_allow"  # live_meta: the operator's allow-list, a JSON list of networks and host names


class UnsafeURLError(ClientfolioError, ValueError):
    """A webhook URL that points somewhere the service must not send to (or cannot be resolved)."""


@dataclass(frozen=True)
class Policy:
    """What the operator admits beyond the public internet."""

    allow_private: bool = False
    allow: tuple[str, ...] = field(default_factory=tuple)

    def networks(self) -> list[Network]:
        out = []
        for entry in self.allow:
            try:
                out.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                continue  # a host name
        return out

    def hosts(self) -> set[str]:
        nets = {str(n) for n in self.networks()}
        return {e.lower().rstrip(".") for e in self.allow if e not in nets and not _is_network(e)}


def _is_network(entry: str) -> bool:
    try:
        ipaddress.ip_network(entry, strict=False)
        return True
    except ValueError:
        return False


def check_allow_entries(entries: Sequence[str]) -> tuple[str, ...]:
    """Allow-list entries checked: networks (CIDR or single addresses) or plain host names."""
    out = []
    for e in entries:
        e = str(e).strip()
        if not e or any(c in e for c in "/:@ ") and not _is_network(e):
            raise UnsafeURLError(f"allow-list entry {e!r} is neither a network (127.0.0.0/8, fd00::/8, 10.1.2.3) "
                                 "nor a host name (crm.internal)")
        out.append(e)
    return tuple(out)


@dataclass(frozen=True)
class Target:
    """A checked URL and the address to connect to."""

    url: str
    scheme: str
    host: str
    port: int
    address: Address

    def connect_url(self) -> str:
        """The URL with the checked address in place of the host name (the Host header keeps the name)."""
        parts = urlsplit(self.url)
        ip = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        netloc = f"{ip}:{self.port}"
        return parts._replace(netloc=netloc).geturl()

    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def _why_not_public(ip: Address) -> str | None:
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:
        ip = mapped
    for attr, words in (("is_unspecified", "unspecified"), ("is_loopback", "loopback"),
                        ("is_link_local", "link-local (e.g. the cloud metadata service)"),
                        ("is_multicast", "multicast"), ("is_private", "private"), ("is_reserved", "reserved")):
        if getattr(ip, attr):
            return words
    if not ip.is_global:
        return "non-public"
    return None


def check_address(ip: Address, policy: Policy) -> str | None:
    """Why `ip` may not be a webhook target under `policy` (None when it may)."""
    why = _why_not_public(ip)
    if why is None:
        return None
    plain = getattr(ip, "ipv4_mapped", None) or ip
    if any(plain in n or ip in n for n in policy.networks() if n.version == plain.version or n.version == ip.version):
        return None
    if policy.allow_private and why in ("private", "loopback"):
        return None
    return why


def _split(url: str) -> tuple[str, str, int]:
    if not isinstance(url, str) or len(url) > 2048:
        raise UnsafeURLError("a webhook URL is text of at most 2,048 characters")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise UnsafeURLError(f"{url!r} is not a URL ({exc}); write it as https://host/path") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeURLError(f"{url!r}: webhooks go to http:// or https:// URLs only, not {scheme or 'no'} scheme")
    if parts.username is not None or parts.password is not None:
        raise UnsafeURLError(f"{parts.hostname}: a webhook URL must not carry a user name or password; the "
                             "signature headers authenticate the sender")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsafeURLError(f"{url!r} has no host; write it as https://host/path")
    return scheme, host, port or (443 if scheme == "https" else 80)


def resolve(url: str, policy: Policy = Policy()) -> Target:
    """Check `url` and resolve its host; raise UnsafeURLError saying why it is refused."""
    scheme, host, port = _split(url)
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise UnsafeURLError(f"{host}: cannot resolve the host name ({exc}); check the URL") from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(i[4][0].split("%")[0]) for i in infos))
    if host.lower() in policy.hosts():
        return Target(url=url.strip(), scheme=scheme, host=host, port=port, address=addresses[0])
    refused = [(ip, why) for ip in addresses if (why := check_address(ip, policy)) is not None]
    if refused:
        ip, why = refused[0]
        shown = host if str(ip) == host else f"{host} resolves to {ip}, which"
        how = "--allow-private (private and loopback networks) or " if why in ("private", "loopback") else ""
        raise UnsafeURLError(
            f"{shown} is a {why} address: webhooks go only to public addresses, so that a URL cannot reach "
            f"the service's own network; an operator who means it allows it with {how}"
            f"`clientfolio webhooks allow {ip}`")
    return Target(url=url.strip(), scheme=scheme, host=host, port=port, address=addresses[0])
