"""The inventory: the lab servers envctl knows, their groups and per-host settings.

Hosts are named on the command line (`--host lab3`, `--hosts lab1,lab2,mlu`). Each name is
looked up in the inventory as a host, a group or a range (`lab[1-4]`); a name the inventory
does not know is an SSH destination or ~/.ssh/config alias, kept as given with the inventory's
defaults, so envctl works with no inventory at all. OpenSSH resolves destinations later:
nothing here reads ~/.ssh/config or touches the network.

The file (explicit path, else ENVCTL_INVENTORY, else $XDG_CONFIG_HOME/envctl/inventory.yaml
when it exists):

    defaults:                    # every host, unless the host says otherwise
      data_dir: /data/envctl     # envctl's cache and workspaces there (default: the remote user's own)
      fetch: remote              # remote: the host downloads itself; push: bytes from the local cache
    hosts:
      lab[1-4]:                  # lab1..lab4; node[01-12] keeps the padding; rack[1-2]-gpu[1,3]
        ssh: "{name}.lab.example"  # SSH destination; {name} is the host's name; default: the name
      lab5:
        ssh: root@10.0.0.5
        fetch: push
        cards: 0-3               # default card selection: a count (2) or indices (0,2 / 0-3 / [0, 2]), as --cards
        root: /srv/fakehost      # where probes look (simulated hosts); default /
        env: {HF_ENDPOINT: https://hf-mirror.com}   # merged over defaults.env
        mirrors:                 # as the user config file's (envctl/user_config.py), merged over defaults.mirrors
          huggingface: http://10.0.0.2:8080   # the mirror lab5 downloads from with fetch: remote
          pip: http://10.0.0.2:3141/simple    # PIP_INDEX_URL of its containers
        data_addr: 192.168.10.5  # its data-plane IPv4 address for runs across nodes (exec --nodes)
    groups:
      mlu: [lab1, lab2, "lab[3-4]"]   # quote ranges inside [...]: brackets are YAML syntax there
      everything: [mlu, lab5]         # groups may contain groups, never in a cycle

A setting written as null on a host resets it to envctl's built-in default (null under env:
drops a variable inherited from defaults). `env` values may be credentials: no repr, str or
error message ever shows them.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from envctl.cards import Cards, CardsError, parse_cards
from envctl.errors import EXIT_USAGE, EnvctlError, ManifestError, Problem
from envctl.manifest.did_you_mean import suggest
from envctl.manifest.interpolate import looks_secret
from envctl.manifest.yamlsrc import Document, PathKey, dotted, parse_file
from envctl.paths import config_home, expand_home
from envctl.user_config import Mirrors, over, read_mirrors

FETCH_MODES = ("remote", "push")
SETTINGS = ("ssh", "data_dir", "fetch", "cards", "root", "env", "data_addr", "mirrors")
SECTIONS = ("defaults", "hosts", "groups")
NAME_PLACEHOLDER = "{name}"
# A typo such as node[1-10000] should fail at once, not build ten thousand hosts.
MAX_RANGE = 1024

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_NAME_RULE = "letters, digits, '.', '_', '-'; starting with a letter or digit"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BRACKETS = re.compile(r"\[([^\[\]]*)\]")
_ITEM = re.compile(r"^([0-9]+)(?:-([0-9]+))?$")


@dataclass(frozen=True, repr=False)
class HostEntry:
    """One host as resolved: its own settings over the inventory's defaults over envctl's."""

    name: str  # what the user calls it (inventory name, or the destination as typed)
    ssh: str  # what is handed to `ssh` (destination or ~/.ssh/config alias)
    data_dir: str | None = None  # None: the remote user's ~/.cache/envctl and ~/.local/share/envctl
    fetch: str = "remote"  # one of FETCH_MODES
    cards: Cards | None = None  # a count (2) or indices ((0, 1, 2, 3) from "0-3"), read by envctl.cards
    root: str = "/"
    # hash=False: a dict cannot be hashed, and entries are wanted in sets and as dict keys.
    env: dict[str, str] = field(default_factory=dict, hash=False)
    defined_at: str | None = None  # "file:line" of its inventory entry; None when not in the inventory
    data_addr: str | None = None  # its data-plane IPv4 address for exec --nodes (envctl.nodes.addresses); None: chosen
    # Its mirrors (defaults' merged under its own), over this machine's: envctl.mirror_routes.
    mirrors: Mirrors = field(default_factory=Mirrors)

    def __repr__(self) -> str:
        # The dataclass repr would print env values, which may be tokens: show only their names.
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            shown.append(f"env={{{', '.join(f'{k!r}: ***' for k in value)}}}" if f.name == "env" else f"{f.name}={value!r}")
        return f"HostEntry({', '.join(shown)})"

    @property
    def secrets(self) -> frozenset[str]:
        """Values of credential-looking variables (HF_TOKEN, ...), to redact from remote output."""
        return frozenset(v for k, v in self.env.items() if looks_secret(k) and v)


@dataclass(frozen=True, repr=False)
class Inventory:
    """Hosts and groups of one inventory file (`file` None: there is none)."""

    file: str | None = None
    hosts: dict[str, HostEntry] = field(default_factory=dict)  # in file order
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)  # group → host names, nested groups flattened
    defaults: dict[str, Any] = field(default_factory=dict)  # validated `defaults:` settings

    def __repr__(self) -> str:
        return f"Inventory(file={self.file!r}, hosts={list(self.hosts)!r}, groups={list(self.groups)!r})"

    def adhoc(self, name: str) -> HostEntry:
        """A host the inventory does not list: `name` is its SSH destination, as typed. The
        defaults' ssh template is not applied: `root@10.0.0.9` must stay what the user wrote."""
        settings = {k: v for k, v in self.defaults.items() if k != "ssh"}
        return _entry(name, settings, {}, None)


# ---------------------------------------------------------------------------- locating the file


def inventory_path(explicit: str | os.PathLike | None, environ: Mapping[str, str]) -> Path | None:
    """The inventory to read: `explicit` (--inventory), else ENVCTL_INVENTORY (both returned
    even when missing, so that loading says so), else $XDG_CONFIG_HOME/envctl/inventory.yaml
    (default ~/.config/...) when it exists, else None. Only `environ` is consulted for the home
    directory, so a test passing its own environ never sees the real one."""
    given = os.fspath(explicit) if explicit else environ.get("ENVCTL_INVENTORY")
    if given:
        return Path(expand_home(given, environ))
    home = config_home(environ)
    default = home / "inventory.yaml" if home is not None else None
    return default if default is not None and default.is_file() else None


def load_inventory(path: str | os.PathLike | None = None, environ: Mapping[str, str] | None = None) -> Inventory:
    """Read and validate the inventory (see inventory_path); an empty Inventory when there is
    none. Raises ManifestError listing every problem, each as file:line:column: path: message."""
    environ = os.environ if environ is None else environ
    found = inventory_path(path, environ)
    if found is None:
        return Inventory()
    doc, problems = parse_file(found)
    if doc is None:
        origin = "--inventory" if path else "ENVCTL_INVENTORY" if environ.get("ENVCTL_INVENTORY") else None
        raise ManifestError(problems, hint=f"the inventory path comes from {origin}" if origin else None)
    return _read(doc, problems)


# ---------------------------------------------------------------------------- ranges


def expand_range(pattern: str) -> list[str]:
    """`lab[1-3]` → lab1, lab2, lab3. `node[01-12]` keeps the zero padding, `[1,3,5-6]` lists,
    and several brackets combine (`rack[1-2]-gpu[1-2]`: rack1-gpu1, rack1-gpu2, rack2-gpu1, ...).
    A name without brackets is itself. Raises ValueError saying what is wrong."""
    parts: list[list[str]] = []
    position = 0
    for match in _BRACKETS.finditer(pattern):
        parts.append([_literal(pattern[position:match.start()], pattern)])
        parts.append(_range_items(match.group(1)))
        position = match.end()
    parts.append([_literal(pattern[position:], pattern)])
    count = 1
    for options in parts:
        count *= len(options)
    if count > MAX_RANGE:
        raise ValueError(f"'{pattern}' expands to {count} names (at most {MAX_RANGE})")
    return ["".join(combination) for combination in itertools.product(*parts)]


def _literal(text: str, pattern: str) -> str:
    if "[" in text or "]" in text:
        raise ValueError(f"'{pattern}' has unbalanced or nested brackets (write lab[1-4] or rack[1-2]-gpu[1-2])")
    return text


def _range_items(body: str) -> list[str]:
    if not body:
        raise ValueError("empty brackets '[]' (write [1-4])")
    out: list[str] = []
    for item in body.split(","):
        match = _ITEM.match(item)
        if not match:
            raise ValueError(f"bad range '[{body}]': '{item}' is not a number or a range of numbers (write [1-4] or [01-12])")
        first, last = match.group(1), match.group(2) or match.group(1)
        if int(first) > int(last):
            raise ValueError(f"bad range '[{body}]': {first}-{last} counts down (write {last}-{first})")
        # A leading zero asks for padding to the width of the first bound: [01-12] → 01..12.
        width = len(first) if first.startswith("0") and len(first) > 1 else 0
        out.extend(f"{n:0{width}d}" for n in range(int(first), int(last) + 1))
    return out


# ---------------------------------------------------------------------------- selection


def split_names(values: str | Iterable[str]) -> list[str]:
    """`--hosts lab1,lab[2,3],mlu` (or repeated options) → ["lab1", "lab[2,3]", "mlu"]: commas
    inside brackets belong to a range; blanks and empty items are dropped."""
    texts = [values] if isinstance(values, str) else list(values)
    names: list[str] = []
    for text in texts:
        depth, current = 0, ""
        for char in text:
            depth += {"[": 1, "]": -1}.get(char, 0)
            if char == "," and depth <= 0:
                names.append(current)
                current = ""
            else:
                current += char
        names.append(current)
    return [name.strip() for name in names if name.strip()]


def select(inventory: Inventory, names: Iterable[str], warn: Callable[[str], None] | None = None) -> list[HostEntry]:
    """The hosts `names` designate, in the order given, each once. A name is a host, a group, a
    range or comma-separated list of them; one the inventory does not know is an SSH destination
    (ad hoc, with the defaults). When such a name is spelled like a group, `warn` is told.
    Raises EnvctlError (usage) for a bad range or a name ssh would read as an option."""
    chosen: dict[str, HostEntry] = {}
    for typed in split_names(list(names)):
        for name in _expand_typed(typed):
            for entry in _resolve(inventory, name, warn):
                chosen.setdefault(entry.name, entry)
    return list(chosen.values())


def _expand_typed(typed: str) -> list[str]:
    # ':' marks an IPv6 address or an ssh:// URI, whose brackets are not ranges.
    if ":" in typed or not ("[" in typed or "]" in typed):
        names = [typed]
    else:
        try:
            names = expand_range(typed)
        except ValueError as exc:
            raise EnvctlError(f"host '{typed}': {exc}", exit_code=EXIT_USAGE) from None
    for name in names:
        if name.startswith("-"):
            # ssh would take it as an option (-oProxyCommand=...), never as a host.
            raise EnvctlError(f"host '{name}' starts with '-': that is not an SSH destination", exit_code=EXIT_USAGE)
        if any(char.isspace() for char in name):
            raise EnvctlError(f"host '{name}' contains a space: that is not an SSH destination", exit_code=EXIT_USAGE)
    return names


def _resolve(inventory: Inventory, name: str, warn: Callable[[str], None] | None) -> list[HostEntry]:
    if name in inventory.hosts:
        return [inventory.hosts[name]]
    if name in inventory.groups:
        return [inventory.hosts[member] for member in inventory.groups[name]]
    # Only groups are suggested: lab6 beside an inventory lab5 is usually a real ssh alias.
    close = suggest(name, inventory.groups) if "@" not in name else ""
    if warn is not None and close:
        warn(f"'{name}' is not a host or group of {inventory.file}{close}; using it as an SSH destination")
    return [inventory.adhoc(name)]


# ---------------------------------------------------------------------------- reading the file


def _entry(name: str, defaults: Mapping[str, Any], own: Mapping[str, Any], defined_at: str | None) -> HostEntry:
    """Own settings over defaults over envctl's; None anywhere means envctl's default."""
    merged = {**defaults, **own}
    env = {} if "env" in own and own["env"] is None else {**(defaults.get("env") or {}), **(own.get("env") or {})}
    ssh = merged.get("ssh") or NAME_PLACEHOLDER
    return HostEntry(
        name=name,
        ssh=ssh.replace(NAME_PLACEHOLDER, name),
        data_dir=merged.get("data_dir"),
        fetch=merged.get("fetch") or "remote",
        cards=None if merged.get("cards") is None else parse_cards(merged["cards"]),  # checked before
        root=merged.get("root") or "/",
        env={k: v for k, v in env.items() if v is not None},
        defined_at=defined_at,
        data_addr=merged.get("data_addr"),
        mirrors=Mirrors() if "mirrors" in own and own["mirrors"] is None
        else over(defaults.get("mirrors") or Mirrors(), own.get("mirrors") or Mirrors()),
    )


def _kind(value: Any) -> str:
    """The type of a value in words, never the value itself (it may be a secret)."""
    if isinstance(value, bool):
        return "a boolean"
    return {str: "text", int: "an integer", float: "a number", list: "a list", dict: "a mapping",
            type(None): "nothing (null)"}.get(type(value), type(value).__name__)


def _unknown(key: str, allowed: Iterable[str]) -> str:
    return f"unknown key '{key}'" + (suggest(key, allowed) or f"; expected one of: {', '.join(allowed)}")


def _setting_problem(key: str, value: Any) -> str | None:
    """What is wrong with one (non-null) setting, or None. Never quotes an env value."""
    if key == "ssh":
        if not isinstance(value, str) or not value:
            return f"expected an SSH destination (user@host or an alias), got {_kind(value)}"
        if value.startswith("-"):
            return f"'{value}' starts with '-': ssh would read it as an option"
        if any(char.isspace() for char in value):
            return f"'{value}' contains a space: not an SSH destination"
    elif key in ("data_dir", "root"):
        if not isinstance(value, str):
            return f"expected an absolute path, got {_kind(value)}"
        if not value.startswith("/"):
            return f"'{value}': {key} must be an absolute path on that host"
    elif key == "fetch":
        if value not in FETCH_MODES:
            return f"'{value}' is not one of {', '.join(FETCH_MODES)}{suggest(value, FETCH_MODES)}"
    elif key == "cards":
        try:
            parse_cards(value)
        except CardsError as problem:
            return str(problem)
    elif key == "data_addr":
        try:
            ipaddress.IPv4Address(value if isinstance(value, str) else "")
        except ValueError:
            return f"expected an IPv4 address (the host's data-plane address), got {_kind(value) if not isinstance(value, str) else repr(value)}"
    elif key == "env" and not isinstance(value, dict):
        return f"expected a mapping of variables (NAME: value), got {_kind(value)}"
    return None


class _Reader:
    """Validates one document, collecting every problem so that the user fixes all at once."""

    def __init__(self, doc: Document, problems: list[Problem]):
        self.doc = doc
        self.problems = list(problems)

    def report(self, path: PathKey, message: str, key: bool = False) -> None:
        positions = self.doc.positions
        pos = positions.of_key(path) if key else positions.of_value(path)
        line, column = (pos.line, pos.column) if pos else (1, 1)
        self.problems.append(Problem(self.doc.file, line, column, dotted(path), message))

    def where(self, path: PathKey) -> str:
        pos = self.doc.positions.of_key(path)
        return f"{self.doc.file}:{pos.line if pos else 1}"

    def mapping(self, value: Any, path: PathKey, what: str) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.report(path, f"expected {what}, got {_kind(value)}")
            return {}
        return value

    def settings(self, raw: Any, path: PathKey) -> dict[str, Any]:
        """The valid settings of a host or of defaults; each bad one reported and left out."""
        good: dict[str, Any] = {}
        for key, value in self.mapping(raw, path, "a mapping of settings (ssh:, fetch:, ...) or nothing").items():
            at = path + (key,)
            if key not in SETTINGS:
                self.report(at, _unknown(key, SETTINGS), key=True)
                continue
            message = None if value is None else _setting_problem(key, value)
            if message:
                self.report(at, message)
            else:
                good[key] = self.env(value, at) if key == "env" and value is not None \
                    else read_mirrors(self.doc, value, at, lambda p, m, k: self.report(p, m, key=k)) \
                    if key == "mirrors" and value is not None else value
        return good

    def env(self, raw: dict, path: PathKey) -> dict[str, str | None]:
        """Variables as text (numbers accepted). Messages name the variable, never its value."""
        out: dict[str, str | None] = {}
        for name, value in raw.items():
            if not _ENV_NAME.match(name):
                self.report(path + (name,), f"'{name}' cannot be an environment variable name", key=True)
            elif isinstance(value, bool) or not isinstance(value, (str, int, float, type(None))):
                extra = " (quote it: 'true')" if isinstance(value, bool) else ""
                self.report(path + (name,), f"expected text, got {_kind(value)}{extra}")
            else:
                out[name] = None if value is None else str(value)
        return out

    def names(self, pattern: Any, path: PathKey, key: bool) -> list[str]:
        """The names a host key or group member designates (ranges expanded, each checked)."""
        if not isinstance(pattern, str) or not pattern:
            self.report(path, f"expected a host or group name, got {_kind(pattern)}", key=key)
            return []
        try:
            names = expand_range(pattern)
        except ValueError as exc:
            self.report(path, str(exc), key=key)
            return []
        for name in names:
            if not _NAME.match(name):
                extra = "; put a user@host destination under ssh:" if "@" in name else ""
                self.report(path, f"'{name}' is not a valid name ({_NAME_RULE}){extra}", key=key)
                return []
        return names


def _read(doc: Document, problems: list[Problem]) -> Inventory:
    reader = _Reader(doc, problems)
    top = doc.data
    if not isinstance(top, dict):
        reader.report((), f"an inventory is a mapping (defaults:, hosts:, groups:), got {_kind(top)}")
        raise ManifestError(reader.problems)
    for key in top:
        if key not in SECTIONS:
            reader.report((key,), _unknown(key, SECTIONS), key=True)

    defaults = reader.settings(top.get("defaults"), ("defaults",))
    if NAME_PLACEHOLDER not in (defaults.get("ssh") or NAME_PLACEHOLDER):
        reader.report(("defaults", "ssh"), f"a default ssh must contain {NAME_PLACEHOLDER}, "
                                           "or every host would reach the same machine")

    hosts: dict[str, HostEntry] = {}
    origin: dict[str, tuple[str, PathKey]] = {}  # host → (key that defined it, its path), for duplicates
    for key, raw in reader.mapping(top.get("hosts"), ("hosts",), "a mapping of host names").items():
        path = ("hosts", key)
        names = reader.names(key, path, key=True)
        own = reader.settings(raw, path)
        if len(names) > 1 and NAME_PLACEHOLDER not in (own.get("ssh") or NAME_PLACEHOLDER):
            reader.report(path + ("ssh",), f"'{key}' is {len(names)} hosts: their ssh must contain "
                                           f"{NAME_PLACEHOLDER}, or all would reach the same machine")
        for name in names:
            if name in origin:
                first_key, first_path = origin[name]
                by = f" by '{first_key}'" if first_key != name else ""
                line = doc.positions.of_key(first_path)
                reader.report(path, f"host '{name}' is defined twice (first{by} at line {line.line if line else 1})", key=True)
                continue
            origin[name] = (key, path)
            hosts[name] = _entry(name, defaults, own, reader.where(path))

    groups = _read_groups(reader, top.get("groups"), hosts)
    if reader.problems:
        unique = list(dict.fromkeys(reader.problems))
        raise ManifestError(sorted(unique, key=lambda p: (p.file, p.line or 0, p.column or 0, p.path)))
    return Inventory(doc.file, hosts, groups, defaults)


def _read_groups(reader: _Reader, raw: Any, hosts: Mapping[str, HostEntry]) -> dict[str, tuple[str, ...]]:
    """Group → its hosts, nested groups flattened in order. Members must name hosts or groups:
    in a file the user wrote, an unknown name is a typo, not an ad hoc destination."""
    members: dict[str, list[tuple[str, str, PathKey]]] = {}  # group → (name, member as written, where)
    for group, listed in reader.mapping(raw, ("groups",), "a mapping of group names").items():
        path = ("groups", group)
        if not _NAME.match(group):
            reader.report(path, f"'{group}' is not a valid name ({_NAME_RULE})", key=True)
            continue
        if group in hosts:
            reader.report(path, f"'{group}' is already a host (defined at {hosts[group].defined_at}); "
                                "a group needs a name of its own", key=True)
            continue
        if not isinstance(listed, list) or not listed:
            got = "an empty list" if listed == [] else _kind(listed)
            reader.report(path, f"expected a non-empty list of hosts and groups, got {got}")
            continue
        members[group] = [(name, member, path + (i,)) for i, member in enumerate(listed)
                          for name in reader.names(member, path + (i,), key=False)]

    known = list(hosts) + list(members)
    for listed in members.values():
        for name, member, path in listed:
            if name not in hosts and name not in members:
                source = f" (from '{member}')" if member != name else ""
                reader.report(path, f"no host or group named '{name}'{source}{suggest(name, known)}")

    flat: dict[str, tuple[str, ...]] = {}

    def visit(group: str, trail: tuple[str, ...]) -> tuple[str, ...]:
        if group not in flat:
            out: list[str] = []
            for name, _, path in members[group]:
                if name in hosts:
                    out.append(name)
                elif name in trail:
                    cycle = " → ".join(trail[trail.index(name):] + (name,))
                    reader.report(path, f"groups contain each other in a cycle: {cycle}")
                elif name in members:
                    out.extend(visit(name, trail + (name,)))
            flat[group] = tuple(dict.fromkeys(out))
        return flat[group]

    for group in members:
        visit(group, (group,))
    return flat
