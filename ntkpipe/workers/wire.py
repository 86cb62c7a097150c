"""Messages between a job's process, the pool and a worker: JSON over a Unix socket, with file
descriptors attached (``SCM_RIGHTS``).

A message is an 8-byte big-endian length, then that many bytes of UTF-8 JSON; its descriptors
travel with the length (:func:`socket.send_fds`), so a receiver gets them with the first bytes
it reads. Standard library only: the job's side must start in milliseconds.
"""

from __future__ import annotations

import json
import os
import socket
import struct

__all__ = ["send", "receive", "Closed"]

_HEADER = struct.Struct(">Q")
_MAX_BYTES = 64 * 1024 * 1024


class Closed(ConnectionError):
    """The other side closed the connection before a whole message came."""


def send(sock: socket.socket, message: dict, fds=()) -> None:
    """Send `message` (JSON-serializable) and the descriptors `fds` (duplicated for the
    receiver; the sender keeps its own)."""
    body = json.dumps(message, separators=(",", ":")).encode()
    header = _HEADER.pack(len(body))
    if fds:
        sent = socket.send_fds(sock, [header], list(fds))
    else:
        sent = sock.send(header)
    sock.sendall(header[sent:] + body)


def receive(sock: socket.socket, max_fds: int = 0) -> tuple[dict, list[int]]:
    """The next message and the descriptors that came with it (the receiver owns them).

    Raises:
        Closed: the connection ended first (nothing, or part of a message, came).
    """
    if max_fds:
        data, fds, _, _ = socket.recv_fds(sock, _HEADER.size, max_fds)
    else:
        data, fds = sock.recv(_HEADER.size), []
    if not data:
        _close_all(fds)
        raise Closed("the connection ended")
    try:
        data += _exactly(sock, _HEADER.size - len(data))
        (length,) = _HEADER.unpack(data)
        if length > _MAX_BYTES:
            raise Closed(f"a message of {length} bytes (at most {_MAX_BYTES})")
        return json.loads(_exactly(sock, length)), fds
    except BaseException:
        _close_all(fds)
        raise


def _exactly(sock: socket.socket, count: int) -> bytes:
    chunks, left = [], count
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise Closed("the connection ended in the middle of a message")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _close_all(fds) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
