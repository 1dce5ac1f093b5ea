"""The outbound network guard: which addresses a delivery may connect to, and the connection
classes every delivery uses (they also keep the attempt's hard deadline, see shared/deadline.py).

The check runs on the address the socket actually connects to, after DNS resolution, so a host
name that later resolves to 127.0.0.1 or a cloud metadata address is refused at delivery time.
TLS verification is untouched: the certificate is still checked against the host name.
"""

from __future__ import annotations

import ipaddress
import socket

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from shared import deadline

# Not covered by is_private/is_link_local but used for cloud metadata or carrier NAT.
EXTRA_BLOCKED = (ipaddress.ip_network("100.64.0.0/10"), ipaddress.ip_network("192.0.0.0/24"))


# What a tenant reads of a refusal: where its URL resolves inside the operator's network is
# the operator's to know (their log has it), not the tenant's.
REFUSED = "refused by the network guard"


class BlockedDestination(NewConnectionError):
    """The destination resolved only to addresses the guard refuses. Its message names no
    address; `host` and `addresses` are for the operator's log."""

    def __init__(self, conn, host: str, addresses: list[str]):
        super().__init__(conn, REFUSED)
        self.host = host
        self.addresses = sorted(set(addresses))


class AddressPolicy:
    def __init__(self, allowed_networks=()):
        self.allowed_networks = tuple(allowed_networks)

    def permits(self, address: str) -> bool:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if getattr(ip, "ipv4_mapped", None) is not None:
            ip = ip.ipv4_mapped
        if any(ip in network for network in self.allowed_networks):
            return True
        blocked = (
            ip.is_loopback
            or ip.is_private
            or ip.is_link_local
            or ip.is_multicast
            or ip.is_reserved
            or ip.is_unspecified
            or any(ip in network for network in EXTRA_BLOCKED)
        )
        return not blocked


def _open_socket(conn, policy: AddressPolicy | None):
    """Resolve (within the attempt's deadline), check each address, connect."""
    limit = deadline.current()
    host, port = conn._dns_host, conn.port
    infos = deadline.resolve(host, port, limit)
    refused = []
    last_error = None
    for family, socktype, proto, _name, sockaddr in infos:
        if policy is not None and not policy.permits(sockaddr[0]):
            refused.append(sockaddr[0])
            continue
        sock = socket.socket(family, socktype, proto)
        try:
            for option in conn.socket_options or ():
                sock.setsockopt(*option)
            timeout = limit.remaining() if limit is not None else conn.timeout
            if timeout is not None:
                sock.settimeout(timeout)
            if limit is not None:
                limit.use(sock)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            if limit is not None:
                limit.forget(sock)
            sock.close()
            last_error = exc
    if last_error is not None:
        raise last_error
    raise BlockedDestination(conn, host, refused)


def _new_conn(conn, policy: AddressPolicy | None):
    """`_new_conn` for urllib3 connections, raising urllib3's own errors."""
    try:
        return _open_socket(conn, policy)
    except (BlockedDestination, deadline.DeadlineExceeded):
        raise
    except socket.gaierror as exc:
        raise NameResolutionError(conn.host, conn, exc) from exc
    except TimeoutError as exc:
        raise ConnectTimeoutError(conn, f"connection to {conn.host} timed out") from exc
    except OSError as exc:
        raise NewConnectionError(conn, f"Failed to establish a new connection: {exc}") from exc


def pool_classes(policy: AddressPolicy | None) -> dict:
    """urllib3 pool classes whose connections keep the attempt's deadline and, with a policy,
    go only where it permits."""

    class _Deadline:
        def _new_conn(self):
            return _new_conn(self, policy)

        def request(self, *args, **kwargs):
            limit = deadline.current()
            if limit is not None and self.sock is not None:
                limit.use(self.sock)  # a pooled connection: its socket is this attempt's now
            return super().request(*args, **kwargs)

        def close(self):
            # Before the descriptor is closed (and possibly reused by another connection), the
            # attempt's watchdog must no longer be able to shut it down.
            limit = deadline.current()
            if limit is not None and self.sock is not None:
                limit.forget(self.sock)
            super().close()

    class Connection(_Deadline, HTTPConnection):
        pass

    class TLSConnection(_Deadline, HTTPSConnection):
        pass

    class ConnectionPool(HTTPConnectionPool):
        ConnectionCls = Connection

    class TLSConnectionPool(HTTPSConnectionPool):
        ConnectionCls = TLSConnection

    return {"http": ConnectionPool, "https": TLSConnectionPool}
