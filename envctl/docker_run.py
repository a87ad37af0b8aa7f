"""A `docker run` command line, read as the Docker CLI reads it, without a shell.

The text is what a vendor's quick start shows: one command, often over several lines joined by
backslashes, perhaps after `export NAME=VALUE` lines and comments (vllm-ascend's quick start sets
DEVICE and IMAGE that way). Lines are split into words with `shlex` (POSIX rules: quotes,
backslash escapes); nothing is ever run. `$NAME`, `${NAME}` and `${NAME:-default}` are replaced
by the value the command would have seen: an `export` line above it, else the environment given;
an unset name is an error, never an empty word. `$HOME`, `${HOME}` and a leading `~` become
envctl's own `${HOME}`, so that a manifest stays right for every user. A name that looks like a
credential (HF_TOKEN, *_PASSWORD, ...) is never replaced by its value: it is kept as `${NAME}`
(docker_run_manifest passes such variables at run time only, or refuses the command). As in sh,
nothing is replaced inside single quotes (`bash -c 'vllm serve --port $PORT'` keeps `$PORT` for
the container's shell) or after a backslash, and a value is one word (it is inserted quoted).

Options follow Docker's CLI (spf13/pflag, as `docker run --help` of Docker 28.2 lists them):
`--flag value`, `--flag=value`, boolean flags as `--rm` or `--rm=false`, short flags clustered
(`-it`, `-itd`, `-dit`) with a value flag last taking the rest of the word or the next word
(`-itp8000:8000`, `-p 8000:8000`), and the first word that is not an option is the image; every
word after it belongs to the command (Docker stops reading options there). A flag Docker does
not have is an error naming it, as Docker says it: `unknown flag: --foo`.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field
from typing import Mapping

from envctl.errors import EXIT_USAGE, EnvctlError
from envctl.manifest.interpolate import looks_secret

# docker run's options (Docker 28.2 `docker run --help`, plus flags the CLI hides but accepts:
# --net, --net-alias, --cpu-count, --cpu-percent, --io-maxbandwidth, --io-maxiops, and
# --annotation of Docker 24+). Value: True for a boolean flag, False for one taking a value.
BOOLEAN = True
VALUE = False
FLAGS: dict[str, bool] = {
    "add-host": VALUE, "annotation": VALUE, "attach": VALUE, "blkio-weight": VALUE, "blkio-weight-device": VALUE,
    "cap-add": VALUE, "cap-drop": VALUE, "cgroup-parent": VALUE, "cgroupns": VALUE, "cidfile": VALUE,
    "cpu-count": VALUE, "cpu-percent": VALUE, "cpu-period": VALUE, "cpu-quota": VALUE, "cpu-rt-period": VALUE,
    "cpu-rt-runtime": VALUE, "cpu-shares": VALUE, "cpus": VALUE, "cpuset-cpus": VALUE, "cpuset-mems": VALUE,
    "detach": BOOLEAN, "detach-keys": VALUE, "device": VALUE, "device-cgroup-rule": VALUE,
    "device-read-bps": VALUE, "device-read-iops": VALUE, "device-write-bps": VALUE, "device-write-iops": VALUE,
    "disable-content-trust": BOOLEAN, "dns": VALUE, "dns-option": VALUE, "dns-search": VALUE,
    "domainname": VALUE, "entrypoint": VALUE, "env": VALUE, "env-file": VALUE, "expose": VALUE, "gpus": VALUE,
    "group-add": VALUE, "health-cmd": VALUE, "health-interval": VALUE, "health-retries": VALUE,
    "health-start-interval": VALUE, "health-start-period": VALUE, "health-timeout": VALUE, "help": BOOLEAN,
    "hostname": VALUE, "init": BOOLEAN, "interactive": BOOLEAN, "io-maxbandwidth": VALUE, "io-maxiops": VALUE,
    "ip": VALUE, "ip6": VALUE, "ipc": VALUE, "isolation": VALUE, "kernel-memory": VALUE, "label": VALUE,
    "label-file": VALUE, "link": VALUE, "link-local-ip": VALUE, "log-driver": VALUE, "log-opt": VALUE,
    "mac-address": VALUE, "memory": VALUE, "memory-reservation": VALUE, "memory-swap": VALUE,
    "memory-swappiness": VALUE, "mount": VALUE, "name": VALUE, "net": VALUE, "net-alias": VALUE,
    "network": VALUE, "network-alias": VALUE, "no-healthcheck": BOOLEAN, "oom-kill-disable": BOOLEAN,
    "oom-score-adj": VALUE, "pid": VALUE, "pids-limit": VALUE, "platform": VALUE, "privileged": BOOLEAN,
    "publish": VALUE, "publish-all": BOOLEAN, "pull": VALUE, "quiet": BOOLEAN, "read-only": BOOLEAN,
    "restart": VALUE, "rm": BOOLEAN, "runtime": VALUE, "security-opt": VALUE, "shm-size": VALUE,
    "sig-proxy": BOOLEAN, "stop-signal": VALUE, "stop-timeout": VALUE, "storage-opt": VALUE, "sysctl": VALUE,
    "tmpfs": VALUE, "tty": BOOLEAN, "ulimit": VALUE, "use-api-socket": BOOLEAN, "user": VALUE, "userns": VALUE,
    "uts": VALUE, "volume": VALUE, "volume-driver": VALUE, "volumes-from": VALUE, "workdir": VALUE,
}
SHORT = {"a": "attach", "c": "cpu-shares", "d": "detach", "e": "env", "h": "hostname", "i": "interactive",
         "l": "label", "m": "memory", "p": "publish", "P": "publish-all", "q": "quiet", "t": "tty", "u": "user",
         "v": "volume", "w": "workdir"}
ALIASES = {"net": "network", "net-alias": "network-alias"}  # spellings Docker keeps for old scripts
_TRUE = {"1", "t", "T", "true", "TRUE", "True"}  # strconv.ParseBool, as pflag reads --rm=true
_FALSE = {"0", "f", "F", "false", "FALSE", "False"}
_REFERENCE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(:?-([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")
_ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.S)
HOME = "${HOME}"  # envctl's interpolation: the user's home wherever the manifest is loaded


class DockerRunError(EnvctlError):
    """A docker run command envctl cannot read (exit 2, a usage error)."""

    exit_code = EXIT_USAGE


@dataclass(frozen=True)
class Option:
    """One option as given: its long name (aliases resolved), its value (True/False for a
    boolean flag) and how it was written, for messages (`--device /dev/davinci0`)."""

    name: str
    value: str | bool
    written: str


@dataclass(frozen=True)
class DockerRun:
    options: tuple[Option, ...]
    image: str
    command: tuple[str, ...]
    words: tuple[str, ...] = ()  # the words after `docker run`, as read (for the record)
    # NAME → value of each $NAME replaced (from an export line or the environment), for the record
    substituted: dict[str, str] = field(default_factory=dict)

    def values(self, name: str) -> list[str | bool]:
        return [o.value for o in self.options if o.name == name]

    def flag(self, name: str) -> bool:
        """A boolean flag's last value (pflag: the last one given wins)."""
        given = self.values(name)
        return bool(given[-1]) if given else False


def read_command(text: str, environ: Mapping[str, str] | None = None) -> DockerRun:
    """The docker run command in `text` (see the module's docstring). Raises DockerRunError."""
    environ = os.environ if environ is None else environ
    variables: dict[str, str] = {}
    substituted: dict[str, str] = {}
    run_words: list[str] | None = None
    for number, line in ((n, part) for n, whole in _logical_lines(text) for part in _commands(whole)):
        if line.startswith("$ "):
            line = line[2:]  # a shell prompt copied with the command from a web page
        expanded = _expand_line(line, variables, environ, substituted, number)
        try:
            words = shlex.split(expanded)  # comments were taken out by _logical_lines (shlex would end a word at "#")
        except ValueError as exc:  # "No closing quotation", "No escaped character"
            raise DockerRunError(f"line {number}: cannot split it into words as a shell would: {exc}") from None
        if not words:
            continue
        words = [HOME + word[1:] if word == "~" or word.startswith("~/") else word for word in words]
        if run_words is None and _is_assignment(words):
            for word in words[1:] if words[0] == "export" else words:
                name, value = _ASSIGNMENT.match(word).groups()
                variables[name] = value
            continue
        if run_words is not None:
            if words[0].startswith("-"):
                # `-v /a:/b` on a line of its own: the line before lost its trailing backslash
                # (a copy from a web page often does), so the shell would run two commands
                raise DockerRunError(f"line {number}: '{_short(line)}' continues the docker run command, but the line "
                                     f"before it does not end with a backslash",
                                     hint="end every line but the last of the command with ' \\' (as the quick start "
                                          "writes it), or give the command on one line")
            raise DockerRunError(f"line {number}: only one docker run command is read; '{_short(line)}' follows it",
                                 hint="give the docker run command alone (and export lines before it); "
                                      "commands to run inside the container become setup steps you add")
        run_words = words
    if run_words is None:
        raise DockerRunError("no docker run command given")
    return parse_run(_after_docker_run(run_words), substituted)


def _commands(line: str) -> list[str]:
    """`line` cut at each `;` and `&&` outside quotes (`export IMAGE=...; docker run ... $IMAGE`
    is two commands, run in order, as sh runs them); a quoted or escaped one stays in its word."""
    parts, start, quote, i = [], 0, None, 0
    while i < len(line):
        char = line[i]
        if char == "\\" and quote != "'":
            i += 2
            continue
        if char in "'\"":
            quote = char if quote is None else (None if char == quote else quote)
        elif quote is None and (char == ";" or line.startswith("&&", i)):
            parts.append(line[start:i])
            i += 2 if char == "&" else 1
            start = i
            continue
        i += 1
    parts.append(line[start:])
    return [part.strip() for part in parts if part.strip()]


def _is_assignment(words: list[str]) -> bool:
    rest = words[1:] if words[0] == "export" and len(words) > 1 else words
    return all(_ASSIGNMENT.match(word) for word in rest)


def _short(line: str) -> str:
    line = " ".join(line.split())
    return line if len(line) <= 60 else line[:57] + "..."


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, text) of each command line: a backslash before a newline outside
    single quotes joins the next line (as sh does, also inside double quotes); a newline inside
    quotes stays in the word."""
    lines: list[tuple[int, str]] = []
    current: list[str] = []
    start, number = 1, 1
    quote: str | None = None
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and quote != "'" and i + 1 < len(text):
            following = text[i + 1]
            if following == "\n" or text[i + 1:i + 3] == "\r\n":
                i += 2 if following == "\n" else 3
                number += 1
                continue
            current.append(char + following)
            i += 2
            continue
        if char == "#" and quote is None and (not current or current[-1].isspace()):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end  # a comment: to the end of the line, quotes and all
            continue
        if char in "'\"" and quote is None:
            quote = char
        elif char == quote:
            quote = None
        if char == "\n":
            number += 1
            if quote is None:
                lines.append((start, "".join(current)))
                current, start = [], number
                i += 1
                continue
        current.append(char)
        i += 1
    lines.append((start, "".join(current)))
    return lines


def _expand_line(line: str, variables: dict[str, str], environ: Mapping[str, str], substituted: dict[str, str],
                 number: int) -> str:
    """`line` with $NAME, ${NAME}, ${NAME:-default} and ${NAME-default} replaced as sh would,
    before it is split into words: not inside single quotes, nor after a backslash; a value is
    inserted as one word (quoted for shlex), never split or expanded again. The words come out
    as a manifest's text: a `${` the command keeps literally is written `$${` (envctl's escape,
    so that envctl does not expand it either), $HOME is `${HOME}` and a credential the shell
    would expand is `${NAME}` (see the module's docstring)."""
    out: list[str] = []
    quote: str | None = None
    i = 0
    while i < len(line):
        char = line[i]
        literal_brace = line.startswith("{", i + 1)
        if quote == "'":
            out.append("$$" if char == "$" and literal_brace else char)
            quote = None if char == "'" else quote
            i += 1
            continue
        if char == "\\" and i + 1 < len(line):
            following = line[i + 1]
            if following == "$" and line.startswith("{", i + 2):
                out.append("$$")  # a literal ${ (the backslash goes, as sh and shlex drop it)
            elif quote == '"' and following in "$`":
                out.append(following)  # inside double quotes sh drops this backslash; shlex would keep it
            else:
                out.append(char + following)
            i += 2
            continue
        if char in "'\"":
            quote = char if quote is None else (None if char == quote else quote)
            out.append(char)
            i += 1
            continue
        pwd = next((form for form in _PWD_FORMS if line.startswith(form, i)), None)
        if pwd is not None:
            # $(pwd) is the one command substitution quick starts use (-v $(pwd):/workspace):
            # what it prints is the shell's $PWD, read as $PWD is
            value, _ = _value(_REFERENCE.match("$PWD"), variables, environ, substituted, number)
            value = value.replace("${", "$${")
            out.append(value.replace("\\", "\\\\").replace('"', '\\"') if quote == '"'
                       else shlex.quote(value))
            i += len(pwd)
            continue
        if char == "`" or line.startswith("$(", i):
            raise DockerRunError(f"line {number}: '{_short(line[i:])}' is a command substitution, which envctl does "
                                 f"not run; write its output instead")
        match = _REFERENCE.match(line, i) if char == "$" else None
        if match is None:
            if char == "$" and literal_brace:
                raise DockerRunError(f"line {number}: '{_short(line[i:])}' is a shell expansion envctl does not read "
                                     f"(it reads $NAME, ${{NAME}}, ${{NAME:-default}}); write its value instead")
            out.append(char)
            i += 1
            continue
        value, literal = _value(match, variables, environ, substituted, number)
        if not literal:
            value = value.replace("${", "$${")
        if literal:
            out.append(value)
        elif quote == '"':
            out.append(value.replace("\\", "\\\\").replace('"', '\\"'))
        else:
            out.append(shlex.quote(value) if value else "''")
        i = match.end()
    return "".join(out)


_PWD_FORMS = ("$(pwd)", "`pwd`", "$(pwd -L)", "`pwd -L`")  # pwd -P would resolve links: not $PWD


def _value(match: re.Match, variables: dict[str, str], environ: Mapping[str, str], substituted: dict[str, str],
           number: int) -> tuple[str, bool]:
    """(the value of one reference, whether it is envctl's own text to keep as it is)."""
    name = match.group(1) or match.group(4)
    if name == "HOME":
        return HOME, True
    if looks_secret(name):
        # Never replaced by its value. Written ${NAME}: what the host's shell would have expanded,
        # which docker_run_manifest passes at run time (-e NAME=$NAME) or refuses to write.
        return "${" + name + "}", True
    value = variables.get(name, environ.get(name))
    if value is None or (value == "" and (match.group(2) or "").startswith(":")):
        if match.group(2) is not None:
            return match.group(3), False
        raise DockerRunError(f"line {number}: ${name} is not set",
                             hint=f"export {name}=... as the quick start says before running envctl new, "
                                  f"or write the value into the command")
    substituted[name] = value
    return value, False


def _after_docker_run(words: list[str]) -> list[str]:
    """The words after `docker run` (or `docker container run`, `sudo docker run`)."""
    rest = words[1:] if words[0] == "sudo" else words
    if rest[:2] == ["docker", "run"]:
        return rest[2:]
    if rest[:3] == ["docker", "container", "run"]:
        return rest[3:]
    raise DockerRunError(f"expected a docker run command, got '{_short(' '.join(words))}'",
                         hint="give the whole command as the quick start shows it: docker run [OPTIONS] IMAGE [COMMAND]")


def parse_run(args: list[str], substituted: dict[str, str] | None = None) -> DockerRun:
    """docker run's options, image and command from the words after `docker run`."""
    options: list[Option] = []
    i = 0
    while i < len(args):
        word = args[i]
        if word == "--":
            i += 1
            break
        if word.startswith("--"):
            name, equals, value = word[2:].partition("=")
            i = _long(name, value if equals else None, args, i, options)
        elif word.startswith("-") and word != "-":
            i = _shorthands(word[1:], args, i, options)
        else:
            break
    if i >= len(args):
        raise DockerRunError("the command names no image: docker run [OPTIONS] IMAGE [COMMAND] [ARG...]")
    return DockerRun(tuple(options), args[i], tuple(args[i + 1:]), tuple(args), dict(substituted or {}))


def _long(name: str, value: str | None, args: list[str], i: int, options: list[Option]) -> int:
    if name not in FLAGS:
        raise DockerRunError(f"unknown flag: --{name}", hint="docker run --help lists the flags Docker takes")
    if name == "help":
        raise DockerRunError("--help prints docker run's help; there is nothing to make a manifest of")
    canonical = ALIASES.get(name, name)
    if FLAGS[name] is BOOLEAN:
        options.append(Option(canonical, _boolean(f"--{name}", value), args[i]))
        return i + 1
    if value is None:
        if i + 1 >= len(args):
            raise DockerRunError(f"flag needs an argument: --{name}")
        options.append(Option(canonical, args[i + 1], f"--{name} {args[i + 1]}"))
        return i + 2
    options.append(Option(canonical, value, args[i]))
    return i + 1


def _shorthands(cluster: str, args: list[str], i: int, options: list[Option]) -> int:
    """`-it`, `-itd`, `-p8000:8000`, `-itp 8000:8000`, `-d=false` (pflag's shorthand rules)."""
    position = 0
    while position < len(cluster):
        letter = cluster[position]
        if letter not in SHORT:
            raise DockerRunError(f"unknown shorthand flag: '{letter}' in -{cluster}",
                                 hint="docker run --help lists the flags Docker takes")
        name = SHORT[letter]
        rest = cluster[position + 1:]
        if FLAGS[name] is BOOLEAN:
            if rest.startswith("="):
                options.append(Option(name, _boolean(f"-{letter}", rest[1:]), f"-{letter}{rest}"))
                return i + 1
            options.append(Option(name, True, f"-{letter}"))
            position += 1
            continue
        if rest:
            value = rest[1:] if rest.startswith("=") else rest
            options.append(Option(name, value, f"-{letter} {value}"))
            return i + 1
        if i + 1 >= len(args):
            raise DockerRunError(f"flag needs an argument: '{letter}' in -{cluster}")
        options.append(Option(name, args[i + 1], f"-{letter} {args[i + 1]}"))
        return i + 2
    return i + 1


def _boolean(flag: str, value: str | None) -> bool:
    if value is None or value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise DockerRunError(f"invalid argument \"{value}\" for \"{flag}\" flag: it takes true or false")
