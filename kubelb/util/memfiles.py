"""Paths to text held in anonymous memory, for APIs that read only paths (`ssl`'s
`load_cert_chain`): private keys never touch a file system."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


@contextlib.contextmanager
def memory_file(text: str) -> Iterator[str]:
    """A `/proc/self/fd/N` path to `text` in a memfd, closed when the block ends."""
    fd = os.memfd_create("kubelb-tls", os.MFD_CLOEXEC)
    try:
        os.write(fd, text.encode())
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)
