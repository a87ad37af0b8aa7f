"""What a failed `git fetch` means, from git's own message: the network (the host name not
resolved, the connection refused or unreachable, no answer in time, the transfer broken), TLS,
a refused login, no such repository, no such commit, tag or branch. Each is a FetchError naming
the source, the host and git's last line (credentials are already masked by the caller).

git writes these through libcurl (http, https) or its own transports (ssh, git://, file).
The texts matched, as git 2.x prints them on Linux (checked with git 2.39 / libcurl 7.88 here;
older wordings from public reports, e.g. desktop/desktop#13404, #2746, mininet/mininet#721,
claritylab/lucida#60, walaj/SeqLib#28, orbbec/OpenNI2#7):

- "fatal: unable to access 'URL': Could not resolve host: HOST" (curl 6)
- "Failed to connect to HOST port N after 0 ms: Couldn't connect to server" (curl 7.88),
  "Failed to connect to HOST port N: Connection refused" (curl < 7.75),
  "Failed connect to HOST:N; Connection refused" (curl 7.29), git://'s
  "unable to connect to HOST: ... errno=Connection refused", ssh's "ssh: connect to host HOST
  port N: Connection refused"
- "Operation timed out after N milliseconds", "Connection timed out", "Operation too slow.
  Less than N bytes/sec transferred the last N seconds" (http.lowSpeedLimit/lowSpeedTime)
- "server certificate verification failed. CAfile: ... CRLfile: none" (libcurl-gnutls, Debian's
  git), "SSL certificate problem: self-signed certificate" (OpenSSL), "gnutls_handshake()
  failed: ...", "Peer's Certificate has expired."
- "Authentication failed for 'URL'", "could not read Username for 'URL': terminal prompts
  disabled", "The requested URL returned error: 403", ssh's "Permission denied (publickey)"
- "repository 'URL' not found", "The requested URL returned error: 404", GitHub's "remote:
  Repository not found.", "'PATH' does not appear to be a git repository" (file, ssh)
- "couldn't find remote ref REF", "Server does not allow request for unadvertised object",
  "upload-pack: not our ref SHA"
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from envctl.errors import FetchError

_DNS = re.compile(r"Could not resolve (?:host|proxy): (\S+)|Name or service not known|Temporary failure in name "
                  r"resolution|nodename nor servname provided|Could not resolve hostname (\S+?):", re.I)
_CONNECT = re.compile(r"Failed to connect to|Failed connect to|unable to connect to|ssh: connect to host|"
                      r"Connection refused|Couldn't connect to server|No route to host|Network is unreachable", re.I)
_TIMEOUT = re.compile(r"timed out|Operation too slow", re.I)
_BROKEN = re.compile(r"RPC failed|transfer closed with outstanding read data|Empty reply from server|"
                     r"Connection reset by peer|Recv failure|Send failure|Broken pipe|early EOF|remote end hung up unexpectedly|"
                     r"HTTP/2 stream \d+ was not closed cleanly", re.I)
_TLS = re.compile(r"SSL certificate problem|certificate verification failed|certificate verify failed|"
                  r"gnutls_handshake\(\) failed|SSL_connect|SSL routines|Peer's Certificate|"
                  r"no alternative certificate subject name|unable to get local issuer certificate|"
                  r"SSL: certificate subject name|TLS connection was non-properly terminated", re.I)
_LOGIN = re.compile(r"Authentication failed|could not read (?:Username|Password)|returned error: 40[13]\b|"
                    r"Permission denied \(publickey|HTTP Basic: Access denied|Invalid username or password", re.I)
_NO_REPOSITORY = re.compile(r"repository '[^']*' not found|returned error: 404\b|Repository not found|"
                            r"does not appear to be a git repository|did you run git update-server-info", re.I)
_NO_REF = re.compile(r"couldn't find remote ref|not our ref|unadvertised object|no such remote ref|"
                     r"bad object|invalid refspec", re.I)
_SERVER = re.compile(r"returned error: (5\d\d)\b")

_NETWORK_HINT = ("check this machine's network, DNS and proxy (https_proxy), then fetch again; a git mirror can be set "
                 "in the user configuration (mirrors.git)")


def _host(url: str) -> str:
    """HOST or HOST:PORT of a git URL (scp-like `user@host:path` too); the path for file URLs."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        return parts.path
    if parts.hostname:
        return f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname
    match = re.match(r"^(?:[^@/]+@)?([^:/]+):", url)
    return match.group(1) if match else url


_CONTACTED = (re.compile(r"Failed to connect to (\S+) port (\d+)"), re.compile(r"Failed connect to ([^\s:;]+):(\d+)"),
              re.compile(r"ssh: connect to host (\S+) port (\d+)"))


def _contacted(stderr: str, url: str) -> str:
    """The host git tried, from its own words where it names one (a mirror the URL was
    rewritten to, a proxy), else the source URL's."""
    for pattern in _CONTACTED:
        match = pattern.search(stderr)
        if match:
            return f"{match.group(1)}:{match.group(2)}"
    access = re.search(r"unable to access '([^']+)'", stderr)
    return _host(access.group(1)) if access else _host(url)


def last_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def explain(stderr: str, url: str, ref: str | None, exit_code: int) -> FetchError:
    """The FetchError for a `git fetch` of `ref` (None: every branch and tag) from `url` (as
    shown: git+ and credentials masked) that exited `exit_code` with `stderr`."""
    reason = last_line(stderr) or f"exit {exit_code}"
    what = f"git+{url}" + (f"@{ref}" if ref else "")
    host = _contacted(stderr, url)
    dns = _DNS.search(stderr)
    if dns:
        name = next((g for g in dns.groups() if g), host)
        return FetchError(f"{what}: the network failed: the host name {name} could not be resolved ({reason})",
                          hint=_NETWORK_HINT)
    if _TIMEOUT.search(stderr):
        return FetchError(f"{what}: the network failed: {host} did not answer in time ({reason})", hint=_NETWORK_HINT)
    if _CONNECT.search(stderr):
        return FetchError(f"{what}: the network failed: cannot connect to {host} ({reason})", hint=_NETWORK_HINT)
    if _TLS.search(stderr):
        return FetchError(f"{what}: the TLS connection to {host} failed: its certificate is not trusted here ({reason})",
                          hint="if the server is the right one, add its CA certificate to the system's store "
                               "(update-ca-certificates) or name it in GIT_SSL_CAINFO; envctl never turns "
                               "certificate checks off")
    if _LOGIN.search(stderr):
        given = "@" in (urlsplit(url).netloc or "")
        return FetchError(f"{what}: the server refused access ({reason})",
                          hint="check the user and token in the URL (a token may have expired or lack read access)"
                          if given else "the repository needs a login: give a user and token in the URL "
                                        "(git+https://USER:TOKEN@host/repo.git@ref, with TOKEN from the environment: "
                                        "${TOKEN}) or use git+ssh:// with a key")
    if _BROKEN.search(stderr):
        return FetchError(f"{what}: the network failed: the connection to {host} broke during the transfer ({reason})",
                          hint=_NETWORK_HINT)
    server = _SERVER.search(stderr)
    if server:
        return FetchError(f"{what}: the server {host} failed (HTTP {server.group(1)}: {reason})",
                          hint="the server has a problem of its own: try again later, or a mirror (mirrors.git)")
    if _NO_REPOSITORY.search(stderr):
        return FetchError(f"{what}: there is no repository at {url} ({reason})",
                          hint="check the URL: the host, owner and repository name (a private repository may also "
                               "answer 'not found' to a request without a login)")
    if ref and _NO_REF.search(stderr):
        return FetchError(f"{what}: no such commit, tag or branch ({reason})")
    return FetchError(f"{what}: git fetch failed ({reason})")
