"""What a hub's metadata request that never got an answer means: the network failed (the host
name not resolved, the connection refused or unreachable, no answer in time, the connection
dropped), said in the words git failures use (git_errors.py), naming the host tried, instead of
a client library's class name ("ConnectionError") or errno text ("[Errno -2] Name or service
not known").

The hub clients wrap the operating system's error differently: requests raises
ConnectionError/ConnectTimeout wrapping urllib3's NameResolutionError or NewConnectionError
(whose message carries socket.gaierror's text), the Hugging Face client raises httpx's
ConnectError/ConnectTimeout/ReadTimeout chained to the socket.gaierror or ConnectionRefusedError.
The cause is found by walking the exception's chain (`__cause__`, `__context__`, args) for the
socket error, then by the wrapper's class name and text.
"""

from __future__ import annotations

import errno
import socket
from urllib.parse import urlsplit

NETWORK_HINT = ("check this machine's network, DNS and proxy (https_proxy), then run again; a hub's mirror is set "
                "with HF_ENDPOINT or MODELSCOPE_ENDPOINT, or mirrors: in the user configuration")

_DNS_TEXT = ("Name or service not known", "Temporary failure in name resolution", "nodename nor servname",
             "No address associated with hostname", "Failed to resolve", "getaddrinfo failed")
_UNREACHABLE = (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ECONNABORTED)


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and every exception it was raised from or wraps (depth-first, each once)."""
    seen: list[BaseException] = []
    pending: list[BaseException] = [exc]
    while pending and len(seen) < 50:
        current = pending.pop(0)
        if any(current is s for s in seen):
            continue
        seen.append(current)
        pending += [e for e in (current.__cause__, current.__context__, getattr(current, "reason", None))
                    if isinstance(e, BaseException)]
        pending += [a for a in getattr(current, "args", ()) if isinstance(a, BaseException)]
    return seen


def network_failure(exc: BaseException, url: str) -> str | None:
    """'the network failed: ...' naming the host of `url`, or None when `exc` is not a failure to
    reach the host at all (an answer that came back, a bug)."""
    parts = urlsplit(url)
    host = f"{parts.hostname}:{parts.port}" if parts.port else (parts.hostname or url)
    chain = _chain(exc)
    if any(getattr(e, "response", None) is not None for e in chain):
        return None  # the server answered: its status says why, not the network
    names = " ".join(type(e).__name__ for e in chain)
    texts = " ".join(str(e) for e in chain)
    if any(isinstance(e, socket.gaierror) for e in chain) or "NameResolution" in names \
            or any(t in texts for t in _DNS_TEXT):
        return f"the network failed: the host name {parts.hostname or host} could not be resolved"
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "Connection refused" in texts:
        return f"the network failed: {host} refused the connection"
    if any(isinstance(e, OSError) and e.errno in _UNREACHABLE for e in chain) \
            or "unreachable" in texts.lower():
        return f"the network failed: {host} cannot be reached"
    if any(isinstance(e, (TimeoutError, socket.timeout)) for e in chain) or "Timeout" in names \
            or "timed out" in texts:
        return f"the network failed: {host} did not answer in time"
    if any(isinstance(e, ConnectionResetError) for e in chain) or "RemoteDisconnected" in names \
            or "ProtocolError" in names or "without response" in texts or "Server disconnected" in texts:
        return f"the network failed: {host} closed the connection without an answer"
    if any(isinstance(e, ConnectionError) for e in chain) or "ConnectError" in names or "ConnectionError" in names:
        return f"the network failed: cannot connect to {host}"
    return None
