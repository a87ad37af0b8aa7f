"""What the ssh configuration says, as bytes: the files OpenSSH reads for a connection's options,
for naming the master connections kept alive between commands (envctl/remote/live_master.py).

A master outlives the command that opened it (ControlPersist), and every later command talks to
the server through it. Named after the destination and the config file alone, a master opened
before the user pointed the alias at another server (HostName, Port, User, ProxyJump edited)
would carry the next commands to the old one, silently, until it expired. Named after the
files' bytes too, an edit makes the next command open a master as the config now says (the old
one expires by itself; nothing else uses it).

The files, as ssh(1) and ssh_config(5) (OpenSSH 9.x) say: with `-F FILE`, that file alone;
else ~/.ssh/config then /etc/ssh/ssh_config. `Include` lines are followed (globs, `~`, and
relative paths taken from ~/.ssh for the user's files and -F's, from /etc/ssh for the system's;
~ as $HOME and as the password database's home both),
as deep as ssh follows them (16 levels). Only read: stdlib alone, for the quick paths that run
before anything heavy is imported. A FIFO or device at a file's name counts as
absent, unread.
"""

from __future__ import annotations

import glob
import hashlib
import os
import pwd

from envctl.regular_file import open_regular

MAX_DEPTH = 16  # OpenSSH's READCONF_MAX_DEPTH
MAX_BYTES = 1 << 20  # a config file larger than this is taken by its first MiB


def config_identity(config: str | None) -> str:
    """A digest (hex, 16 characters) of every ssh configuration file a connection made with
    `-F config` (None: OpenSSH's own files) reads, path and bytes, an absent file counted as
    absent. Never raises: a file that cannot be read counts by its name alone."""
    digest = hashlib.sha256()
    seen: set[str] = set()
    for path, user in _top_files(config):
        _add(digest, path, user, 0, seen)
    return digest.hexdigest()[:16]


def _home() -> list[str]:
    # ssh takes ~ from the password database; $HOME may differ (a test's, sudo's): both count.
    homes = [os.path.expanduser("~")]
    try:
        homes.append(pwd.getpwuid(os.getuid()).pw_dir)
    except KeyError:
        pass
    return list(dict.fromkeys(homes))


def _top_files(config: str | None) -> list[tuple[str, bool]]:
    """(path, read as the user's config) of the files ssh starts from."""
    if config:
        return [(os.path.abspath(os.path.expanduser(config)), True)]
    return [(os.path.join(home, ".ssh", "config"), True) for home in _home()] + [("/etc/ssh/ssh_config", False)]


def _add(digest, path: str, user: bool, depth: int, seen: set[str]) -> None:
    if path in seen or depth > MAX_DEPTH:
        return
    seen.add(path)
    try:
        # A regular file alone: a FIFO (`--ssh-config <(...)`) read here would be read by ssh no more.
        with open_regular(path) as config:
            text = config.read(MAX_BYTES)
    except OSError:
        digest.update(f"{path}\0absent\0".encode(errors="surrogateescape"))
        return
    digest.update(f"{path}\0{len(text)}\0".encode(errors="surrogateescape") + text)
    for pattern in _included(text):
        for resolved in _resolved(pattern, user):
            for included in sorted(glob.glob(resolved)):
                _add(digest, included, user, depth + 1, seen)


def _included(text: bytes) -> list[str]:
    """The patterns of the `Include` lines (keyword case-insensitive, `Include=x` as well,
    several patterns per line, double quotes around one with spaces)."""
    patterns = []
    for line in text.decode(errors="surrogateescape").splitlines():
        stripped = line.strip()
        keyword = stripped.split(None, 1)[0].split("=", 1)[0] if stripped else ""
        if keyword.lower() != "include":
            continue
        rest = stripped[len(keyword):].lstrip().lstrip("=").strip()
        while rest:
            if rest.startswith('"'):
                end = rest.find('"', 1)
                end = len(rest) if end < 0 else end
                patterns.append(rest[1:end])
                rest = rest[end + 1:].lstrip()
            else:
                word, *after = rest.split(None, 1)  # spaces or tabs between patterns
                patterns.append(word)
                rest = after[0] if after else ""
    return [p for p in patterns if p]


def _resolved(pattern: str, user: bool) -> list[str]:
    """Where an Include pattern may point. ssh takes `~` and a user file's relative paths from
    one home; which one ($HOME or the password database's) differs between OpenSSH versions, so
    both count: a file too many in the digest costs a master connection, one too few a stale one."""
    if os.path.isabs(pattern):
        return [pattern]
    if pattern.startswith("~/") or pattern == "~":
        return [home + pattern[1:] for home in _home()]
    if pattern.startswith("~"):  # ~user/...
        return [os.path.expanduser(pattern)]
    if not user:
        return [os.path.join("/etc/ssh", pattern)]
    return [os.path.join(home, ".ssh", pattern) for home in _home()]
