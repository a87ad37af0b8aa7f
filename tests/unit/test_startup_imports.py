"""Start-up: what `envctl version`, `envctl --help`, `envctl COMMAND --help` and shell completion
import (issue 14: `--help`, `version`, completion within 60 ms, the time of Python and typer).

Module names, never timings: each case runs envctl in a fresh interpreter under
`python -X importtime` (its report on stderr names every module imported, one per line:
`import time: SELF | CUMULATIVE | NAME`, https://docs.python.org/3/using/cmdline.html#cmdoption-X)
and checks that the heavy libraries and envctl's manifest and engine modules are not among them.
The table of commands `envctl --help` lists without importing them (envctl.cli.COMMANDS) is
checked against the commands the modules really define, and the top-level help envctl prints
from it without typer against typer's own rendering, byte for byte.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys

import pytest

from support import REPO

# Libraries envctl uses for real work, each 10-100 ms to import; none of them is needed to print
# the version, the help or a completion.
HEAVY = ("pydantic", "pydantic_core", "docker", "requests", "urllib3", "huggingface_hub", "paramiko", "rich",
         "yaml", "jsonschema", "kubernetes_validate", "zstandard", "markdown_it", "pygments")
# envctl's own modules that pull those in: the manifest model and loader, the planner, the engine.
HEAVY_ENVCTL = ("envctl.manifest.loader", "envctl.manifest.model", "envctl.plan", "envctl.planning", "envctl.render",
                "envctl.engine", "envctl.observe", "envctl.artifacts.fetch")


def imported(*args: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run `python -X importtime -m envctl ARGS`; the process and the modules it imported."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "envctl", *args], capture_output=True, text=True,
                          env=dict(os.environ if env is None else env, COLUMNS="80"), cwd=REPO, timeout=60)
    modules = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")
               and "|" in line and "self [us]" not in line}
    assert modules, f"no -X importtime report on stderr: {done.stderr[-2000:]}"
    return done, modules


# The console script `envctl` (pyproject [project.scripts]): the program is named envctl.
AS_ENVCTL = "import sys; sys.argv[0] = 'envctl'; from envctl.cli import main; main()"


def heavy_among(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY_ENVCTL)


def test_version_imports_neither_typer_nor_anything_heavy():
    from envctl import __version__

    done, modules = imported("version")
    assert done.returncode == 0 and done.stdout == f"{__version__}\n"
    assert heavy_among(modules) == []
    assert "typer" not in modules and not any(m.startswith("envctl.cli_") for m in modules)


@pytest.mark.parametrize("args", [["--help"], [], ["-h"]], ids=["--help", "no-arguments", "-h-is-not-help"])
def test_top_level_help_through_typer_imports_no_command_module(args):
    done, modules = imported(*args)  # python -m envctl: typer's own help, as click names the program
    assert heavy_among(modules) == []
    assert "typer" in modules
    assert sorted(m for m in modules if m.startswith("envctl.cli_")) == ["envctl.cli_app"]
    if args == ["-h"]:
        assert done.returncode == 2 and "No such option: -h" in done.stderr
    else:
        assert "Usage: python -m envctl [OPTIONS] COMMAND [ARGS]..." in done.stdout + done.stderr


def test_envctl_help_as_the_script_imports_not_even_typer():
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", AS_ENVCTL, "--help"], capture_output=True,
                          text=True, env=dict(os.environ, COLUMNS="80"), cwd=REPO, timeout=60)
    modules = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert done.returncode == 0 and done.stdout.startswith("Usage: envctl [OPTIONS] COMMAND [ARGS]...\n")
    assert "typer" not in modules and heavy_among(modules) == []


@pytest.mark.parametrize("columns", [20, 50, 52, 60, 79, 80, 81, 120, 300])
def test_envctl_help_printed_without_typer_is_typers_own_byte_for_byte(columns):
    """envctl.cli.top_level_help against typer's rendering of the same help (`python -m envctl
    --help`, which click names "python -m envctl" and which therefore goes through typer), at
    narrow, usual and wide terminals (click reads COLUMNS)."""
    from envctl.cli import top_level_help

    theirs = subprocess.run([sys.executable, "-m", "envctl", "--help"], capture_output=True, text=True,
                            env=dict(os.environ, COLUMNS=str(columns)), cwd=REPO, timeout=60)
    assert theirs.returncode == 0, theirs.stderr
    assert top_level_help("python -m envctl", columns) == theirs.stdout
    script = subprocess.run([sys.executable, "-c", AS_ENVCTL, "--help"], capture_output=True, text=True,
                            env=dict(os.environ, COLUMNS=str(columns)), cwd=REPO, timeout=60)
    assert script.stdout == top_level_help("envctl", columns)


def _command_names() -> list[str]:
    from envctl.cli import COMMANDS

    return list(COMMANDS)


@pytest.mark.parametrize("name", _command_names())
def test_each_command_help_imports_its_own_module_and_nothing_heavy(name):
    from envctl.cli import COMMANDS

    done, modules = imported(name, "--help")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(f"Usage: envctl {name} ") or done.stdout.startswith(f"Usage: python -m envctl {name} ")
    assert heavy_among(modules) == []
    assert COMMANDS[name].module in modules
    # Another command module only where the command's module imports it (the shared option helpers).
    shared = {"envctl.cli_app", "envctl.cli_vars", "envctl.cli_remote", COMMANDS[name].module}
    assert {m for m in modules if m.startswith("envctl.cli_")} <= shared


def test_a_subcommand_of_a_group_loads_the_group_module_only():
    done, modules = imported("cache", "ls", "--help")
    assert done.returncode == 0 and "The artifacts in the cache" in done.stdout
    assert "envctl.cli_artifacts" in modules and "envctl.cli_lifecycle" not in modules
    assert heavy_among(modules) == [m for m in heavy_among(modules) if m.split(".")[0] in ("pydantic", "pydantic_core")]


def test_a_mistyped_command_is_matched_against_every_command_not_only_imported_ones():
    done, modules = imported("statu")
    assert done.returncode == 2
    assert "No such command 'statu'. Did you mean 'status'?" in done.stderr
    assert "envctl.cli_lifecycle" not in modules and heavy_among(modules) == []


# Completions: click names the variable that asks for them after the program (_ENVCTL_COMPLETE),
# and bash passes the words typed so far.


def complete(words: str, shell: str = "bash") -> tuple[subprocess.CompletedProcess, set[str]]:
    cword = str(len(words.split()) - (0 if words.endswith(" ") else 1))
    env = dict(os.environ, _ENVCTL_COMPLETE=f"complete_{shell}", COMP_WORDS=words, COMP_CWORD=cword,
               _TYPER_COMPLETE_ARGS=words)
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", AS_ENVCTL], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    modules = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    return done, modules


@pytest.mark.parametrize("words, expected", [("envctl st", ["status", "stop"]), ("envctl ", None),
                                             ("envctl cach", ["cache"]), ("envctl zz", [])])
def test_bash_completion_of_a_command_name_imports_not_even_typer(words, expected):
    from envctl.cli import COMMANDS

    done, modules = complete(words)
    assert done.stdout.split() == (expected if expected is not None else list(COMMANDS))
    assert heavy_among(modules) == [] and "typer" not in modules
    assert not any(m.startswith("envctl.cli_") for m in modules)


# Through the app itself: what typer's completion answers to the same request.
THROUGH_TYPER = "import sys; sys.argv[0] = 'envctl'; from envctl.cli_app import app; app(prog_name='envctl')"


@pytest.mark.parametrize("words, cword", [("envctl st", "1"), ("envctl ", "1"), ("envctl", "1"), ("envctl x", "1"),
                                          ("envctl 'st", "1"), ('envctl "ca', "1"), ("envctl --", "1"),
                                          ("envctl status --", "2"), ("envctl cache ", "2")])
def test_bash_completion_answered_without_typer_is_what_typer_answers(words, cword):
    env = dict(os.environ, _ENVCTL_COMPLETE="complete_bash", COMP_WORDS=words, COMP_CWORD=cword)
    ours = subprocess.run([sys.executable, "-c", AS_ENVCTL], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=60)
    theirs = subprocess.run([sys.executable, "-c", THROUGH_TYPER], capture_output=True, text=True, env=env, cwd=REPO,
                            timeout=60)
    assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr)
    assert theirs.returncode == 0
    assert bool(theirs.stdout.strip()) == (words != "envctl x")  # offers, but for a word no command starts with


def test_zsh_completion_describes_each_command_in_one_short_line():
    done, _ = complete("envctl st", shell="zsh")
    assert '"status":"The environments envctl created on this..."' in done.stdout
    assert '"stop":"Stop the runs of an entrypoint (started..."' in done.stdout


def test_completion_of_a_command_option_imports_that_command_only():
    done, modules = complete("envctl status --")
    assert {"--json", "--host", "--help"} <= set(done.stdout.split())
    assert "envctl.cli_runs" in modules and "envctl.cli_lifecycle" not in modules and "envctl.cli_manifests" not in modules
    assert [m for m in heavy_among(modules) if not m.startswith("pydantic")] == []


def _first_sentence(text: str) -> str:
    flat = " ".join(text.split())
    return re.split(r"(?<=[.?!])\s+(?=[A-Z`])", flat, maxsplit=1)[0]


def test_the_table_of_commands_is_what_the_modules_define():
    """Every command module imported: the same names, each in the module the table names, each
    listed with the first sentence of its own help."""
    import typer.main

    from envctl.cli import COMMANDS
    from envctl.cli_app import app

    for module in sorted({entry.module for entry in COMMANDS.values()}):
        importlib.import_module(module)
    for path in sorted((REPO / "envctl").glob("cli_*.py")):
        importlib.import_module(f"envctl.{path.stem}")  # a command module the table forgot would add its command
    group = typer.main.get_group(app)
    assert set(group.commands) == set(COMMANDS)
    defined_in = {info.name or typer.main.get_command_name(info.callback.__name__): info.callback.__module__
                  for info in app.registered_commands}
    for info in app.registered_groups:
        callbacks = [c.callback for c in info.typer_instance.registered_commands]
        defined_in[info.name] = callbacks[0].__module__
    for name, entry in COMMANDS.items():
        assert defined_in[name] == entry.module, name
        assert entry.summary == _first_sentence(group.commands[name].help or ""), name


def test_top_level_help_lists_every_command_with_its_summary():
    from envctl.cli import COMMANDS

    done, _ = imported("--help")
    text = " ".join(done.stdout.split())
    for name, entry in COMMANDS.items():
        assert f" {name} {entry.summary}" in text, name


@pytest.mark.parametrize("columns", [None, "", "0", "-3", "wide", "100", "33"])
def test_terminal_width_is_read_as_shutil_reads_it(monkeypatch, columns):
    """envctl --help reads the width without shutil (and the compression modules it imports),
    as click does with shutil.get_terminal_size: COLUMNS, else the terminal, else 80."""
    import shutil

    from envctl.cli import _terminal_columns

    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    assert _terminal_columns() == shutil.get_terminal_size().columns


FAST_ANSWERS = {"version": (["version"], {}), "help": (["--help"], {}),
                "completion": ([], {"_ENVCTL_COMPLETE": "complete_bash", "COMP_WORDS": "envctl st", "COMP_CWORD": "1"})}


@pytest.mark.parametrize("case", list(FAST_ANSWERS))
def test_an_answer_given_before_typer_to_a_full_disk_is_an_error_not_a_traceback(case):
    args, extra = FAST_ANSWERS[case]
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-c", AS_ENVCTL, *args], stdout=full, stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ, **extra), cwd=REPO, timeout=60)
    assert done.returncode == 1
    assert done.stderr == "error: cannot write to standard output: No space left on device\n"


@pytest.mark.parametrize("case", list(FAST_ANSWERS))
def test_an_answer_given_before_typer_to_a_closed_pipe_ends_quietly(case):
    args, extra = FAST_ANSWERS[case]
    reader, writer = os.pipe()
    os.close(reader)  # the reader is gone before envctl writes: `envctl --help | true`
    done = subprocess.run([sys.executable, "-c", AS_ENVCTL, *args], stdout=writer, stderr=subprocess.PIPE, text=True,
                          env=dict(os.environ, **extra), cwd=REPO, timeout=60)
    os.close(writer)
    assert done.returncode == 1 and done.stderr == ""


# The full (typer) paths of `up`, `plan`, `exec` and `status` (issue 14): the planner, the
# observation, the run listing and the image step import no library that only fetching,
# downloading, loading a tarball or drawing progress needs; docker-py comes with the engine's
# first use (envctl.engine), not with these modules.
FETCH_ONLY = ("requests", "urllib3", "huggingface_hub", "zstandard", "rich", "paramiko")
FETCHERS = ("envctl.artifacts.download", "envctl.artifacts.http_get", "envctl.artifacts.gitsrc", "envctl.artifacts.archive",
            "envctl.artifacts.hf", "envctl.artifacts.modelscope", "envctl.images", "envctl.progress")


def imported_by(module: str) -> set[str]:
    """The modules a fresh interpreter holds after `import MODULE` (not the names set to None to
    keep a module out, as envctl/__init__.py does docker-py's paramiko transport)."""
    done = subprocess.run([sys.executable, "-c", f"import sys, {module}; print(*sorted(k for k, v in sys.modules.items() "
                          "if v is not None))"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return set(done.stdout.split())


def among(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if m in names or m.split(".")[0] in names)


@pytest.mark.parametrize("module", ["envctl.plan", "envctl.planning", "envctl.observe", "envctl.observe_cache",
                                    "envctl.runs", "envctl.image_step", "envctl.artifacts.fetch"])
def test_the_planner_and_what_it_reads_import_neither_the_fetchers_nor_docker(module):
    modules = imported_by(module)
    assert among(modules, FETCH_ONLY + ("docker",)) == []
    assert among(modules, FETCHERS) == []


@pytest.mark.parametrize("module", ["envctl.apply", "envctl.artifact_steps"])
def test_up_imports_the_fetchers_only_when_something_is_fetched(module):
    """docker-py is there (envctl.lifecycle catches its errors, and `up` talks to the engine),
    and with it requests; huggingface_hub, zstandard, rich and envctl's downloaders are not."""
    modules = imported_by(module)
    assert among(modules, ("huggingface_hub", "zstandard", "rich", "paramiko")) == []
    assert among(modules, FETCHERS) == []


def test_runs_imports_no_terminal_module_for_the_users_name():
    """getpass (and termios with it) only when a run record is written (`envctl exec`)."""
    assert among(imported_by("envctl.runs"), ("getpass", "termios")) == []


def test_plan_of_a_manifest_imports_no_fetcher(tmp_path):
    """The whole `envctl plan FILE` (the engine not reachable here: the plan still observes the
    host, the caches and the manifest's sources, and says what it could not ask)."""
    manifest = tmp_path / "m" / "manifest.yaml"
    manifest.parent.mkdir()
    manifest.write_text("name: startup-plan\ndescription: a plan whose artifact is not fetched\ndevice: {kind: cpu}\n"
                        "image: {ref: busybox:1}\n"
                        "artifacts:\n  weights: {source: https://example.invalid/w.bin, target: /models/w.bin}\n"
                        "setup:\n  - {name: one, run: 'true'}\n")
    env = dict(os.environ, DOCKER_HOST=f"unix://{tmp_path}/no.sock", ENVCTL_CACHE=str(tmp_path / "cache"),
               ENVCTL_WORKSPACE=str(tmp_path / "ws"), HOME=str(tmp_path))
    done, modules = imported("plan", str(manifest), env=env)
    assert done.returncode == 5 and "undecided" in done.stdout, done.stderr[-2000:]
    assert "fetch" in done.stdout and "weights" in done.stdout  # the artifact was planned, not fetched
    assert among(modules, ("huggingface_hub", "zstandard", "rich", "paramiko")) == []
    assert among(modules, FETCHERS) == []


def test_rich_is_loaded_with_the_first_transfer_not_with_the_progress_display():
    """`up` opens a ByteProgress whether or not it moves bytes; an `up` of an environment already
    up moves none and loads no rich (envctl/progress.py); the first transfer does."""
    # A bar asked for and never advanced (a tarball whose identity is remembered: the image step
    # of an `up` already up) loads nothing either.
    script = ("import sys\nfrom envctl.progress import ByteProgress\n"
              "with ByteProgress() as progress:\n    print('rich' in sys.modules)\n"
              "    unread = progress('reading x', 10)\n    print('rich' in sys.modules)\n"
              "    advance = progress('loading x', 10); advance(4); advance(6)\n    print('rich' in sys.modules)\n"
              "with ByteProgress() as progress:\n    advance = progress('again', 5); advance(5)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "False\nFalse\nTrue\n", "")  # stderr no terminal: no bar
