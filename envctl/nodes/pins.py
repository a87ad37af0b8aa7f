"""Find the launchers a command starts and refuse the forms that pin a run to one node.

Every tutorial the shipped manifests follow starts its launcher in a single-node form: torchrun /
torch.distributed.launch with `--nnodes=1` or `--standalone`, a master port drawn at random on
each node (`MASTER_PORT=$(shuf -n 1 -i 10000-65535)`), `deepspeed --num_gpus` (which starts the
local node only, or reaches the others through pdsh and ssh), msrun's and MindFormers'
`msrun_launcher.sh` short forms (no node rank, `--join=False`). Run on several nodes, each of
those trains alone or hangs. `pin_problems` names every such form with its line, so a manifest is
refused before anything starts. A launcher is found where a script line starts it: after a
reserved word (`then torchrun ...`), behind a program that runs it (`taskset -c 0-23`,
`timeout 3600`, `numactl ...`, `sudo -E`), after python's valued options (`-W ignore`), and inside
`bash -c '...'`.

A topology value (node count, node rank, master address and port, DeepSpeed's world info,
msrun's worker count) is accepted only when it comes from a variable of the per-node contract
(envctl.nodes.contract), which is what differs from node to node; a literal, another variable,
or a contract variable the script assigns itself, is the same on every node.

Launcher flags, from their parsers: torch/distributed/run.py (torch 2.x; the underscore
spellings exist since 1.9 and the hyphen ones since 2.0), deepspeed/launcher/runner.py and
launch.py (0.9.2, and `--no_ssh` since DeepSpeed PR #5728), mindspore/parallel/cluster/run.py
(2.3) and MindFormers r1.1.0 scripts/msrun_launcher.sh (positional forms of 1, 2, 6 and 9
arguments; `--master_addr`/`--node_rank` are passed only in the 9-argument form).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from envctl.nodes.shellwords import Word, argv_words, commands

LAUNCHERS = ("torchrun", "torch.distributed.launch", "deepspeed", "msrun", "none")

# Which invocations belong to which declared launcher. torchrun and torch.distributed.launch
# share one parser (launch adds --use_env), so either declaration accepts either form.
_FAMILY = {
    "torchrun": "torch", "torch.distributed.launch": "torch", "deepspeed.runner": "deepspeed",
    "deepspeed.launch": "deepspeed", "msrun": "msrun", "msrun_launcher.sh": "msrun",
}
_MODULES = {
    "torch.distributed.run": "torchrun", "torch.distributed.launch": "torch.distributed.launch",
    "deepspeed.launcher.launch": "deepspeed.launch", "deepspeed.launcher.runner": "deepspeed.runner",
}
_WRAPPERS = {"exec", "nohup", "env", "time", "command"}
# Reserved words a command may follow on the same line (`if ...; then torchrun ...`, `do`, `{`).
_RESERVED = {"if", "then", "elif", "else", "while", "until", "do", "{", "!"}
# Programs that run the command they are given, after options and values of their own (a CPU
# list, a timeout, a NUMA node): the launcher is the first launcher-named word after them.
_RUNNERS = {"taskset", "timeout", "numactl", "stdbuf", "nice", "ionice", "chrt", "setsid", "sudo", "doas", "su-exec",
            "gosu", "xargs", "srun", "mpirun", "unbuffer", "catchsegv", "strace", "ltrace", "nsys", "nvprof",
            "cnperf-cli", "msprof"}
# python's options that take a value of their own (`python -W ignore -m torch.distributed.launch`).
_PYTHON_VALUED = {"-W", "-X", "-Q"}

# Contract variables each topology value may come from.
FROM_CONTRACT = {
    "nnodes": ("ENVCTL_NNODES", "PET_NNODES"),
    "node_rank": ("ENVCTL_NODE_RANK", "PET_NODE_RANK"),
    "master_addr": ("ENVCTL_MASTER_ADDR", "MASTER_ADDR", "PET_MASTER_ADDR"),
    "master_port": ("ENVCTL_MASTER_PORT", "MASTER_PORT", "PET_MASTER_PORT"),
    "rdzv_endpoint": ("ENVCTL_MASTER_ADDR", "MASTER_ADDR", "PET_MASTER_ADDR", "ENVCTL_MASTER_PORT", "MASTER_PORT",
                      "PET_MASTER_PORT"),
    "world_info": ("ENVCTL_DS_WORLD_INFO",),
    "worker_num": ("ENVCTL_WORLD_SIZE",),
}
_SUGGEST = {
    "nnodes": '"$ENVCTL_NNODES"', "node_rank": '"$ENVCTL_NODE_RANK"', "master_addr": '"$ENVCTL_MASTER_ADDR"',
    "master_port": '"$ENVCTL_MASTER_PORT"', "rdzv_endpoint": '"$ENVCTL_MASTER_ADDR:$ENVCTL_MASTER_PORT"',
    "world_info": '"$ENVCTL_DS_WORLD_INFO"', "worker_num": '"$ENVCTL_WORLD_SIZE"',
}
# Options that take a value (normalised: no dashes, '-' as '_'); the others are flags.
_VALUED = {
    "torch": {"nnodes", "nproc_per_node", "node_rank", "master_addr", "master_port", "rdzv_backend", "rdzv_endpoint",
              "rdzv_id", "rdzv_conf", "max_restarts", "monitor_interval", "start_method", "role", "log_dir", "r",
              "redirects", "t", "tee", "local_addr", "local_ranks_filter", "logs_specs"},
    "deepspeed.runner": {"H", "hostfile", "i", "include", "e", "exclude", "num_nodes", "num_gpus", "num_accelerators",
                         "min_elastic_nodes", "max_elastic_nodes", "master_port", "master_addr", "node_rank", "launcher",
                         "launcher_args", "ssh_port", "comment", "account", "bind_core_list"},
    "deepspeed.launch": {"node_rank", "master_addr", "master_port", "world_info", "nnodes", "min_elastic_nodes",
                         "max_elastic_nodes", "save_pid", "bind_core_list"},
    "msrun": {"worker_num", "local_worker_num", "master_addr", "master_port", "node_rank", "log_dir", "join",
              "cluster_time_out", "bind_core", "sim_level", "sim_rank_id", "rank_table_file"},
}


@dataclass(frozen=True)
class Pin:
    line: int  # 0-based line of the command text (for an argument list: the item's index)
    message: str


@dataclass(frozen=True)
class Invocation:
    kind: str  # torchrun | torch.distributed.launch | deepspeed.runner | deepspeed.launch | msrun | msrun_launcher.sh
    line: int
    options: dict[str, Word]  # normalised option name → its value (flags: a word holding the option itself)
    arguments: tuple[Word, ...]  # what follows the options (the script and its arguments)

    @property
    def family(self) -> str:
        return _FAMILY[self.kind]


def _normal(option: str) -> str:
    return option.lstrip("-").replace("-", "_")


def _command_start(words: list[Word]) -> int:
    """Index of the command word: past reserved words, assignments and wrappers such as `exec`
    or `env`, and past a runner such as `taskset -c 0-23` or `timeout 3600` to the launcher it
    starts (a runner starting no launcher is the command word itself)."""
    i = 0
    while i < len(words) and (words[i].text in _RESERVED or words[i].assignment or words[i].text in _WRAPPERS
                              or (i and words[i - 1].text == "env" and words[i].text.startswith("-"))):
        i += 1
    # Behind a runner, or a wrapper with options of its own (`time -p`, `env -u NAME`, `nohup --`),
    # the launcher is the first launcher-named word.
    behind = any(posixpath.basename(w.text) in _RUNNERS or w.text in _WRAPPERS for w in words[:i + 1])
    if i < len(words) and i and words[i - 1].text == "command" and words[i].text in ("-v", "-V"):
        return len(words)  # `command -v deepspeed` looks the program up, it starts nothing
    if i < len(words) and behind and not _names_launcher(words, i):
        for j in range(i + 1, len(words)):
            if _names_launcher(words, j):
                return j
    return i


def _names_launcher(words: list[Word], i: int) -> bool:
    program = posixpath.basename(words[i].text)
    return (program in ("torchrun", "deepspeed", "msrun") or program.endswith("msrun_launcher.sh")
            or (program.startswith("python") and not program.endswith(".py"))
            or (program in ("bash", "sh") and i + 1 < len(words) and words[i + 1].text.endswith("msrun_launcher.sh")))


def _shell_c(words: list[Word], start: int) -> list[list[Word]] | None:
    """`bash -c 'TEXT'` / `sh -c "TEXT"`: TEXT's own commands, their lines counted from the word's."""
    if posixpath.basename(words[start].text) not in ("bash", "sh"):
        return None
    rest = words[start + 1:]
    for k, word in enumerate(rest):
        if not word.text.startswith("-"):
            return None
        if "c" in word.text.lstrip("-") and not word.text.startswith("--") and k + 1 < len(rest):
            inner = rest[k + 1]
            return [[Word(w.raw, w.text, inner.line + w.line) for w in command] for command in commands(inner.text)]
    return None


def _options(words: list[Word], start: int, valued: set[str]) -> tuple[dict[str, Word], int]:
    options: dict[str, Word] = {}
    i = start
    while i < len(words) and words[i].text.startswith("-") and words[i].text != "-":
        word = words[i]
        if word.text == "--":
            return options, i + 1
        name, eq, value = word.text.partition("=")
        key = _normal(name)
        if eq:
            raw_value = word.raw.split("=", 1)[1] if "=" in word.raw else value
            options[key] = Word(raw_value, value, word.line)
        elif key in valued and i + 1 < len(words):
            options[key] = words[i + 1]
            i += 1
        else:
            options[key] = word
        i += 1
    return options, i


def find_invocations(words_list: list[list[Word]]) -> list[Invocation]:
    """Every launcher start in the commands, with its options and what follows them."""
    found = []
    for words in words_list:
        start = _command_start(words)
        if start >= len(words):
            continue
        inner = _shell_c(words, start)
        if inner is not None:
            found.extend(find_invocations(inner))
            continue
        program = posixpath.basename(words[start].text)
        kind, rest = None, start + 1
        if program == "torchrun":
            kind = "torchrun"
        elif program == "deepspeed":
            kind = "deepspeed.runner"
        elif program == "msrun":
            kind = "msrun"
        elif program.endswith("msrun_launcher.sh"):
            kind = "msrun_launcher.sh"
        elif program in ("bash", "sh") and rest < len(words) and words[rest].text.endswith("msrun_launcher.sh"):
            kind, rest = "msrun_launcher.sh", rest + 1
        elif program.startswith("python"):
            i = rest
            while i < len(words) and words[i].text.startswith("-") and words[i].text not in ("-m",) and not words[i].text.startswith("-m"):
                i += 2 if words[i].text in _PYTHON_VALUED else 1
            if i < len(words):
                module = words[i + 1].text if words[i].text == "-m" and i + 1 < len(words) else words[i].text[2:] if words[i].text.startswith("-m") else None
                if module in _MODULES:
                    kind, rest = _MODULES[module], i + (2 if words[i].text == "-m" else 1)
        if kind is None:
            continue
        if kind == "msrun_launcher.sh":
            found.append(Invocation(kind, words[start].line, {}, tuple(words[rest:])))
            continue
        valued = _VALUED["torch" if kind in ("torchrun", "torch.distributed.launch") else kind]
        options, end = _options(words, rest, valued)
        found.append(Invocation(kind, words[start].line, options, tuple(words[end:])))
    return found


def _assignments(words_list: list[list[Word]]) -> dict[str, Word]:
    """Variables the script itself sets (`NAME=value` alone or after `export`), last one wins."""
    assigned: dict[str, Word] = {}
    for words in words_list:
        items = words[1:] if words[0].text in ("export", "readonly", "local", "declare") else words
        if items and all(w.assignment for w in items):
            for word in items:
                name, value = word.assignment
                assigned[name] = Word(value.raw, value.text, word.line)
    return assigned


def _origin(value: Word, allowed: tuple[str, ...], assigned: dict[str, Word], option: str) -> str | None:
    """Why the value is the same on every node (None: it comes from the contract)."""
    if value.substitutes and not value.variables:
        return f"{option} is {value.text!r}, computed on each node: {_random_or_not(value)}"
    names = value.variables
    if not names:
        return f"{option} is {value.text!r}, a literal, so every node gets the same value"
    for name in names:
        if name in assigned:
            set_to = assigned[name]
            if set_to.variables and set_to.variables[0] in allowed and not set_to.substitutes:
                continue
            return f"{option} comes from ${name}, which the command sets itself ({name}={set_to.raw}): {_random_or_not(set_to)}"
        if name in allowed:
            continue
        return f"{option} comes from ${name}, which is not part of the per-node contract ({', '.join('$' + a for a in allowed)})"
    return None


def _random_or_not(value: Word) -> str:
    if "shuf" in value.raw or "RANDOM" in value.raw:
        return "a port drawn at random on each node, so the nodes never agree on it"
    if not value.substitutes and not value.variables:
        return "a literal, so every node gets the same value"
    return "each node computes its own value"


def _check_topology(inv: Invocation, assigned: dict[str, Word], required: tuple[str, ...], spelled: dict[str, str],
                    positional: bool = False) -> list[Pin]:
    def advice(option: str, key: str) -> str:
        return f"pass {_SUGGEST[key]} as {option}" if positional else f"write {option}={_SUGGEST[key]}"

    pins = []
    for key in ("nnodes", "node_rank", "master_addr", "master_port", "rdzv_endpoint", "world_info", "worker_num"):
        option = spelled.get(key, "--" + key)
        value = inv.options.get(key)
        if value is None:
            if key in required:
                pins.append(Pin(inv.line, f"{_name(inv)} has no {option}: without it the launcher starts this node alone; "
                                          f"add {option}={_SUGGEST[key]}"))
            continue
        why = _origin(value, FROM_CONTRACT[key], assigned, option)
        if why:
            pins.append(Pin(value.line, f"{_name(inv)}: {why}; {advice(option, key)}"))
    return pins


def _name(inv: Invocation) -> str:
    return {"deepspeed.runner": "deepspeed", "deepspeed.launch": "deepspeed.launcher.launch"}.get(inv.kind, inv.kind)


def _check(inv: Invocation, assigned: dict[str, Word]) -> list[Pin]:
    if inv.family == "torch":
        pins = []
        if "standalone" in inv.options:
            pins.append(Pin(inv.options["standalone"].line, f"{_name(inv)} --standalone starts a rendezvous of this node "
                                                            "alone on every node; remove it"))
        # Without --nnodes/--node_rank torchrun reads PET_NNODES/PET_NODE_RANK, which the contract sets.
        return pins + _check_topology(inv, assigned, (), {})
    if inv.kind == "deepspeed.launch":
        return _check_topology(inv, assigned, ("node_rank", "master_addr", "master_port", "world_info"), {})
    if inv.kind == "deepspeed.runner":
        if "node_rank" not in inv.options or "no_ssh" not in inv.options:
            how = ("--num_gpus" if "num_gpus" in inv.options else "--num_accelerators" if "num_accelerators" in inv.options else "")
            return [Pin(inv.line, f"deepspeed {how + ' ' if how else ''}without --no_ssh and --node_rank starts this node alone "
                                  "(or every node through pdsh and ssh between containers); start each node as DeepSpeed's "
                                  "multi-node runner does: python -u -m deepspeed.launcher.launch "
                                  "--world_info=\"$ENVCTL_DS_WORLD_INFO\" --node_rank=\"$ENVCTL_NODE_RANK\" "
                                  "--master_addr=\"$ENVCTL_MASTER_ADDR\" --master_port=\"$ENVCTL_MASTER_PORT\" SCRIPT ARGS")]
        return _check_topology(inv, assigned, ("node_rank",), {})
    if inv.kind == "msrun":
        pins = _check_topology(inv, assigned, ("worker_num", "node_rank", "master_addr"), {})
        join = inv.options.get("join")
        if join is None or join.text != "True":
            pins.append(Pin(join.line if join else inv.line, "msrun without --join=True returns as soon as its workers "
                                                            "start, so the run's result is lost; add --join=True"))
        return pins
    return _check_launcher_script(inv, assigned)


def _check_launcher_script(inv: Invocation, assigned: dict[str, Word]) -> list[Pin]:
    """MindFormers' msrun_launcher.sh "CMD" WORKER_NUM LOCAL_WORKER MASTER_ADDR MASTER_PORT NODE_RANK
    LOG_DIR JOIN CLUSTER_TIME_OUT: only the 9-argument form passes a master and node rank."""
    args = inv.arguments
    if len(args) != 9:
        return [Pin(inv.line, f"msrun_launcher.sh with {len(args)} argument{'s' if len(args) != 1 else ''} starts one node "
                              "(only its 9-argument form passes --master_addr and --node_rank); write "
                              "msrun_launcher.sh \"CMD\" \"$ENVCTL_WORLD_SIZE\" \"$ENVCTL_NUM_CARDS\" \"$ENVCTL_MASTER_ADDR\" "
                              "\"$ENVCTL_MASTER_PORT\" \"$ENVCTL_NODE_RANK\" LOG_DIR True TIMEOUT")]
    named = Invocation(inv.kind, inv.line, {"worker_num": args[1], "master_addr": args[3], "master_port": args[4],
                                            "node_rank": args[5]}, args)
    spelled = {"worker_num": "WORKER_NUM (2nd argument)", "master_addr": "MASTER_ADDR (4th argument)",
               "master_port": "MASTER_PORT (5th argument)", "node_rank": "NODE_RANK (6th argument)"}
    pins = _check_topology(named, assigned, (), spelled, positional=True)
    if args[7].text != "True":
        pins.append(Pin(args[7].line, f"msrun_launcher.sh JOIN (8th argument) is {args[7].text!r}: msrun returns as soon as "
                                      "its workers start, so the run's result is lost; pass True"))
    return pins


# Contract variables a process or launcher reads from its environment, by what they hold.
_READ_FROM_ENV = {
    "MASTER_ADDR": "master_addr", "MASTER_PORT": "master_port", "PET_MASTER_ADDR": "master_addr",
    "PET_MASTER_PORT": "master_port", "PET_NNODES": "nnodes", "PET_NODE_RANK": "node_rank",
    "ENVCTL_MASTER_ADDR": "master_addr", "ENVCTL_MASTER_PORT": "master_port", "ENVCTL_NNODES": "nnodes",
    "ENVCTL_NODE_RANK": "node_rank", "ENVCTL_WORLD_SIZE": "worker_num", "ENVCTL_DS_WORLD_INFO": "world_info",
}
# torch's launchers read PET_* for flags not given and set MASTER_ADDR/MASTER_PORT for their
# workers themselves; DeepSpeed's and msrun take every topology value as a flag (checked there).
_ENV_READERS = {"torch": ("PET_MASTER_ADDR", "PET_MASTER_PORT", "PET_NNODES", "PET_NODE_RANK")}


def _reassigned(words_list: list[list[Word]], launcher: str) -> list[Pin]:
    """Contract variables the script sets to a value of its own where what runs reads them from
    the environment: with launcher `none` the processes read MASTER_ADDR/MASTER_PORT (torch's
    env:// rendezvous) and ENVCTL_*; torch's launchers read PET_*. The tutorials' `export
    MASTER_PORT=$(shuf -n 1 -i 10000-65535)` before `python train.py` is the per-node random port
    in that form. The variables are exported already (the contract), so an assignment without
    `export`, or before a command (`MASTER_PORT=... python train.py`), changes them too."""
    family = _FAMILY.get(launcher, "torch" if "torch" in launcher else launcher)
    names = set(_READ_FROM_ENV) if launcher == "none" else set(_ENV_READERS.get(family, ()))
    pins = []
    for words in words_list:
        items = words[1:] if words and words[0].text in ("export", "readonly", "local", "declare") else words
        for word in items:
            assignment = word.assignment
            if assignment is None:
                break  # past the assignments a command starts with
            name, value = assignment
            if name not in names:
                continue
            key = _READ_FROM_ENV[name]
            why = _origin(Word(value.raw, value.text, word.line), FROM_CONTRACT[key], {}, name)
            if why:
                pins.append(Pin(word.line, f"the command sets {name} itself, which the per-node contract sets on every "
                                           f"node: {why}; remove the assignment, or write {name}={_SUGGEST[key]}"))
    return pins


def pin_problems(run: str | list[str], launcher: str) -> list[Pin]:
    """Problems that keep `run` from running on several nodes with `launcher` (one of LAUNCHERS):
    each pinned form of every launcher it starts, a contract variable the command sets itself
    where the launcher or the processes read it from the environment, and a declared launcher
    it never starts."""
    words_list = commands(run) if isinstance(run, str) else argv_words(run)
    assigned = _assignments(words_list)
    invocations = find_invocations(words_list)
    pins = [pin for inv in invocations for pin in _check(inv, assigned)] + _reassigned(words_list, launcher)
    if launcher != "none" and not any(inv.family == _FAMILY.get(launcher, "torch" if "torch" in launcher else launcher) for inv in invocations):
        starts = {"torchrun": "torchrun or python -m torch.distributed.run",
                  "torch.distributed.launch": "python -m torch.distributed.launch (or torchrun)",
                  "deepspeed": "python -u -m deepspeed.launcher.launch", "msrun": "msrun or msrun_launcher.sh"}[launcher]
        pins.append(Pin(0, f"the entrypoint declares launcher {launcher}, but its command never starts {starts}"))
    return sorted(pins, key=lambda p: p.line)
