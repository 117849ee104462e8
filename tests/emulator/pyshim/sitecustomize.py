"""Resolve *.localhost to 127.0.0.1 in Python processes that get the emulator's environment.

RFC 6761 reserves .localhost for loopback and systemd-resolved answers it, but plain glibc
(files + dns) does not. azure-ai-ml uploads job inputs to https://{account}.blob.{storage suffix},
so with the emulator's storage suffix "core.localhost:PORT" it needs
devstoreaccount1.blob.core.localhost. Only name resolution changes; every byte still goes to the
real Azurite over TLS.
"""

import socket

_getaddrinfo = socket.getaddrinfo


def _loopback_getaddrinfo(host, *args, **kwargs):
    if isinstance(host, bytes):
        host = host.decode()
    if isinstance(host, str) and host.lower().rstrip(".").endswith(".localhost"):
        host = "127.0.0.1"
    return _getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _loopback_getaddrinfo
