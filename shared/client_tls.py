"""TLS contexts for receivers that demand a client certificate or use a private CA.

One context per distinct `ClientTLS` per process: the sender's pool keys its connection pools
by context, so a webhook's connections are reused across attempts, and no two webhooks share
a connection made with the other's certificate.

Python's TLS stack loads a certificate chain only from a file. The key is written to an
anonymous in-memory file (memfd) where the platform has one, so it never reaches a disk;
elsewhere to a private temporary file deleted at once.
"""

from __future__ import annotations

import os
import ssl
import tempfile
import threading
from pathlib import Path

from shared.attempt_rules import ClientTLS

MAX_CONTEXTS = 1024  # a crude bound: a webhook whose material changes leaves its old context


class TLSContexts:
    def __init__(self):
        self._contexts: dict[ClientTLS, ssl.SSLContext] = {}
        self._lock = threading.Lock()

    def context_for(self, tls: ClientTLS) -> ssl.SSLContext:
        context = self._contexts.get(tls)
        if context is None:
            with self._lock:
                context = self._contexts.get(tls)
                if context is None:
                    if len(self._contexts) >= MAX_CONTEXTS:
                        self._contexts.clear()
                    context = self._contexts[tls] = build_context(tls)
        return context


def build_context(tls: ClientTLS) -> ssl.SSLContext:
    """Certificates verified as usual (host name included); with a CA, only that CA is
    trusted for this receiver."""
    context = ssl.create_default_context(cadata=tls.ca) if tls.ca else ssl.create_default_context()
    if tls.certificate and tls.key:
        _load_chain(context, tls.certificate.strip() + "\n" + tls.key)
    return context


def _load_chain(context: ssl.SSLContext, pem: str) -> None:
    if hasattr(os, "memfd_create") and Path("/proc/self/fd").is_dir():
        fd = os.memfd_create("client-tls")
        try:
            with os.fdopen(os.dup(fd), "w") as file:
                file.write(pem)
            context.load_cert_chain(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
        return
    folder = tempfile.mkdtemp(prefix="client-tls-")  # readable by this user only
    path = Path(folder) / "chain.pem"
    try:
        path.write_text(pem)
        context.load_cert_chain(str(path))
    finally:
        path.unlink(missing_ok=True)
        os.rmdir(folder)
