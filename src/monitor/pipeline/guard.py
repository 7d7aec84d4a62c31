"""Address safety: every connection goes to an address we resolved and checked ourselves.

A feed is untrusted input: an item linking to http://169.254.169.254/ (cloud metadata) or to a service on
the host's private network must never be requested. Checking the URL is not enough — a public name can
resolve to a private address, or change its answer between our check and the connect (DNS rebinding) — so
the check sits in the connection layer: the host is resolved once, every answer is checked, and the socket
connects to a checked address. TLS still verifies the certificate against the original host name.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

import httpcore

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class AddressRefusedError(Exception):
    """The host resolves only to addresses the policy refuses."""


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Which addresses the fetcher may connect to: public ones, plus what the user allows."""

    allow_private: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_setting(cls, value: str | None) -> AddressPolicy:
        """Read MONITOR_ALLOW_PRIVATE_NETWORKS: ``1`` allows all, or a comma-separated list of networks."""
        text = (value or "").strip().lower()
        if text in ("", "0", "false", "no", "off"):
            return cls()
        if text in ("1", "true", "yes", "on"):
            return cls(allow_private=True)
        try:
            networks = tuple(
                ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()
            )
        except ValueError as exc:
            raise ValueError(f"not 1, 0 or a comma-separated list of networks such as 10.0.0.0/8: {exc}") from None
        return cls(allowed_networks=networks)

    def refusal(self, address: IPAddress) -> str | None:
        """Why address is refused, or None when it may be used."""
        if self.allow_private or any(address in network for network in self.allowed_networks):
            return None
        for embedded in _embedded_ipv4(address):
            reason = self.refusal(embedded)
            if reason is not None:
                return f"{reason} inside {address}"
        if address.is_multicast:
            return "a multicast address"
        # is_global, not is_private: 100.64.0.0/10 (carrier-grade NAT) is neither, and must be refused too.
        if not address.is_global:
            return f"a {_kind(address)} address"
        return None


_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def _embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries (mapped, 6to4, Teredo, NAT64, IPv4-compatible)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    found = [a for a in (address.ipv4_mapped, address.sixtofour) if a is not None]
    if address.teredo is not None:
        found.extend(address.teredo)
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def _kind(address: IPAddress) -> str:
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_private:
        return "private"
    if address.is_unspecified:
        return "unspecified"
    return "reserved"


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that connects only to addresses the policy allows."""

    def __init__(self, policy: AddressPolicy, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.policy = policy
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await _resolve(host, port, timeout)
        allowed = [a for a in addresses if self.policy.refusal(a) is None]
        if not allowed:
            address = addresses[0]
            raise AddressRefusedError(f"{host} is {address}, {self.policy.refusal(address)}")
        error: Exception | None = None
        for address in allowed:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AddressRefusedError("unix sockets are never used")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


async def _resolve(host: str, port: int, timeout: float | None) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
    except TimeoutError:
        raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
    addresses: list[IPAddress] = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise httpcore.ConnectError(f"{host} has no address")
    return addresses
