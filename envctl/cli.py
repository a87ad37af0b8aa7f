"""The `envctl` command line: the only modules that print or exit are this one and the command
modules (envctl/cli_*.py). Each command's module is imported when that command runs, shows its
help or is completed, and no other (COMMANDS below); `envctl version`, `envctl --help` and bash's
completion of a command name are answered from here before typer is imported, in little more
than Python's own start-up."""

from __future__ import annotations

import os
import sys
from collections import namedtuple  # not typing.NamedTuple: typing alone is a tenth of `envctl version`

APP_HELP = "Reproducible LLM environments on Cambricon MLU and Huawei Ascend servers."


# module: the module whose import registers the command on `app`; summary: the first sentence of
# the command's help, as `envctl --help` lists it.
Entry = namedtuple("Entry", "module summary")


# Every command, in the order `envctl --help` lists them. `envctl NAME ...` imports NAME's module
# alone (envctl.cli_app.LazyGroup), so a command's start-up costs only what that command uses:
# `envctl NAME --help` imports typer and NAME's module, not pydantic, docker-py, requests,
# huggingface_hub or rich (the command modules import those inside the functions that need
# them). tests/unit/test_startup_imports.py checks this table against the commands the modules
# define: the same names, modules and first sentences.
COMMANDS: dict[str, Entry] = {
    "fetch": Entry("envctl.cli_artifacts", "Fetch a manifest's artifacts into the cache (of the hosts named: pushed from "
                   "this machine's cache, only what they lack, or downloaded there with `fetch: remote`), and make the "
                   "writable copies `mode: rw` asks for: the artifact steps of `up`, starting nothing."),
    "lock": Entry("envctl.cli_artifacts", "Resolve every ref to a commit and record every file's size and sha256 in "
                  "manifest.lock, and a pulled image's tag to its manifest digest."),
    "cards": Entry("envctl.cli_cards", "Every card of this host (or of the hosts named): model, bus ID, memory, "
                   "utilisation, temperature, and who holds it: envctl environments (with the user who brought them "
                   "up), other containers given its device node, privileged containers (every card), the processes "
                   "cnmon or npu-smi list."),
    "export": Entry("envctl.cli_export", "Write the jobs a cluster engine runs for ENTRYPOINT on N nodes, from the plan "
                    "`exec --nodes` runs; or, with --check and a directory, validate an export offline (exit 1 on a "
                    "problem)."),
    "image": Entry("envctl.cli_images", "Make sure the manifest's image is on the engine (load, build or pull it, as "
                   "`up` would), and nothing else: for preparing a box before its artifacts are ready."),
    "build": Entry("envctl.cli_images", "Bake the image with the setup steps inside, tagged by the hash of its inputs; "
                   "`up` then uses it."),
    "save": Entry("envctl.cli_images", "Write the baked image as a tarball for air-gapped servers (load it there with "
                  "`envctl load`)."),
    "load": Entry("envctl.cli_images", "Load an image tarball into the engine, reading its identity from the tarball "
                  "itself."),
    "up": Entry("envctl.cli_lifecycle", "Bring an environment up: driver check, devices, artifacts, image, container, "
                "setup."),
    "exec": Entry("envctl.cli_lifecycle", "Run an entrypoint in its environment's container; exits with the "
                  "entrypoint's code."),
    "shell": Entry("envctl.cli_lifecycle", "Open a shell in an environment's container."),
    "status": Entry("envctl.cli_runs", "The environments envctl created on this host (or on the hosts named), with "
                    "the work running in each: entrypoints (since when, pid in the container, log), `docker exec`s and "
                    "background processes."),
    "logs": Entry("envctl.cli_runs", "Print the log of the latest entrypoint run (kept in the environment's "
                  "workspace), or of the entrypoint's run still running (a server started with exec --detach); -f "
                  "follows it until that run ends (then says its exit code, on stderr), and returns at once for a "
                  "run that has ended."),
    "down": Entry("envctl.cli_lifecycle", "Remove an environment's container; the artifact cache and, unless --purge, "
                  "the workspace stay."),
    "doctor": Entry("envctl.cli_lifecycle", "Is this host (or are the hosts named) ready?"),
    "list": Entry("envctl.cli_manifests", "List the manifests found, with device kind and description."),
    "show": Entry("envctl.cli_manifests", "Print the fully resolved manifest: profiles merged, variants applied, --var "
                  "and variables expanded."),
    "validate": Entry("envctl.cli_manifests", "Check manifests; every problem at once, with file:line:column and the "
                      "field's path."),
    "schema": Entry("envctl.cli_manifests", "Print the JSON Schema of the manifest format (for editor completion)."),
    "plan": Entry("envctl.cli_manifests", "Show exactly what `up` would do on this host (or the hosts named); exit 5 "
                  "when something blocks it (among them: recreating a container in which work runs)."),
    "version": Entry("envctl.cli_manifests", "Print envctl's version."),
    "stop": Entry("envctl.cli_serve", "Stop the runs of an entrypoint (started with exec --detach, or in another "
                  "terminal): SIGTERM to each run's process group, SIGKILL after --timeout seconds."),
    "new": Entry("envctl.cli_new", "Start a manifest: a copy of another (--from) or a vendor's docker run command "
                 "(--from-docker-run), written to ./manifests/NAME/manifest.yaml (or --dir ROOT) and checked as "
                 "`validate` checks it."),
    "cache": Entry("envctl.cli_artifacts", "The artifact cache shared by every manifest on this host."),
    "config": Entry("envctl.cli_config", "The user configuration file (mirrors): what is in effect and where each "
                    "setting comes from."),
}


def __getattr__(name: str):
    # `from envctl.cli import app` (the Typer app, for typer.testing.CliRunner), without importing
    # typer whenever envctl.cli is imported.
    if name == "app":
        from envctl.cli_app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# The top-level options as typer words them (its completion options, click's --help):
# tests/unit/test_startup_imports.py checks `envctl --help` printed here against typer's own.
TOP_OPTIONS = (("--install-completion", "Install completion for the current shell."),
               ("--show-completion", "Show completion for the current shell, to copy it or customize the installation."),
               ("--help", "Show this message and exit."))


def _terminal_columns() -> int:
    """shutil.get_terminal_size().columns, as click asks it (COLUMNS, else the terminal on stdout,
    else 80), without shutil and the compression modules it imports."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 80
    return columns or 80


def top_level_help(prog: str, columns: int | None = None) -> str:
    """`PROG --help` as typer prints it with plain (click) help, from COMMANDS: click's layout
    (HelpFormatter: width min(terminal, 80) - 2, never under 50; definition lists with the first
    column at most 30 wide, 2 spaces apart; textwrap with whitespace kept)."""
    import textwrap

    width = max(min(columns or _terminal_columns(), 80) - 2, 50)

    def wrap(text: str, at: int, first: str = "", rest: str = "") -> str:
        return textwrap.TextWrapper(at, initial_indent=first, subsequent_indent=rest,
                                    replace_whitespace=False).fill(text.expandtabs())

    def definitions(rows) -> list[str]:
        column = min(max(len(name) for name, _ in rows), 30) + 2
        out = []
        for name, text in rows:
            lines = wrap(text, max(width - column - 2, 10)).splitlines()
            head = f"  {name}" + (" " * (column - len(name)) if len(name) <= column - 2 else "\n" + " " * (column + 2))
            out.append(head + lines[0])
            out.extend(" " * (column + 2) + line for line in lines[1:])
        return out

    prefix = f"Usage: {prog} "
    usage = (wrap("[OPTIONS] COMMAND [ARGS]...", width, prefix, " " * len(prefix)) if width >= len(prefix) + 20
             else prefix + "\n" + wrap("[OPTIONS] COMMAND [ARGS]...", width, " " * 11, " " * 11))
    lines = [usage, "", wrap(APP_HELP, width, "  ", "  "), "", "Options:", *definitions(TOP_OPTIONS), "",
             "Commands:", *definitions([(name, entry.summary) for name, entry in COMMANDS.items()])]
    return "\n".join(lines) + "\n"


def command_names_completed(prog: str, environ) -> list[str] | None:
    """The commands bash completes the first word to, as typer's completion does from the same
    request (click's: `_PROG_COMPLETE=complete_bash`, COMP_WORDS the line, COMP_CWORD the word's
    index): the names in COMMANDS that start with the word. None for any other request (another
    shell, a later word, an option), which typer answers."""
    if environ.get(f"_{prog}_COMPLETE".replace("-", "_").upper()) != "complete_bash" or environ.get("COMP_CWORD") != "1":
        return None
    import shlex

    lexer = shlex.shlex(environ.get("COMP_WORDS", ""), posix=True)  # click's split_arg_string
    lexer.whitespace_split, lexer.commenters = True, ""
    words: list[str] = []
    try:
        words.extend(lexer)
    except ValueError:  # an open quote: the word typed so far
        words.append(lexer.token)
    word = words[1] if len(words) > 1 else ""
    if word and not word[0].isalnum():
        return None  # an option: typer lists the group's
    return [name for name in COMMANDS if name.startswith(word)]


def _write(text: str) -> None:
    """Standard output of the answers given before typer is imported, byte for byte as typer.echo
    writes it. A stdout that cannot take it is said on stderr (a full disk) or left quietly (a
    reader that closed the pipe), exit 1, never a traceback. Raises UnicodeEncodeError, nothing
    written, when stdout's encoding cannot hold the text (see `_answered`)."""
    try:
        if text.isascii() and "\x1b" not in text:
            sys.stdout.write(text)  # as click writes it: nothing of it is escaped or re-encoded
            sys.stdout.flush()
        else:
            # Written by the full path's own typer.echo (click's echo): it strips ANSI escape
            # sequences when stdout is not a terminal and writes UTF-8 to an ASCII stdout, and text
            # from the engine (labels) may hold either. Imported only for such text (~40 ms).
            from typer import echo

            echo(text, nl=False)
    except OSError as problem:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left for Python to flush at exit
        if not isinstance(problem, BrokenPipeError):
            sys.stderr.write(f"error: cannot write to standard output: {problem.strerror}\n")
        sys.exit(1)


def _answered(text: str) -> bool:
    """`text` written by `_write`; False, nothing written, when stdout's encoding cannot hold it:
    the full path then answers as it does (its typer.echo fails the same way)."""
    try:
        _write(text)
    except UnicodeEncodeError:
        return False
    return True


def _open_hosts_early(args: list[str]) -> None:
    """`up`/`plan NAME --host H` start opening their hosts now, before typer, the manifest's
    modules and the manifest itself are read (envctl/remote/early_open.py)."""
    if args[:1] in (["up"], ["plan"]):
        from envctl.remote import early_open

        early_open.start(args, os.environ)


def _quick(args: list[str]) -> bool:
    """The plain forms of the hot commands, answered without typer when they can be decided
    quickly (`up NAME [--host H]` of an environment a recorded plan found already up:
    envctl/quick_up.py; `exec ENTRY --host H` from a record of its resolution: envctl/quick_exec.py;
    `status`: envctl/quick_status.py; `status --host NAME` through a live master's forwarded
    engine socket: envctl/quick_status_remote.py). False: the full path answers, as if this were not here.
    ENVCTL_NO_QUICK=1 always takes the full path."""
    if os.environ.get("ENVCTL_NO_QUICK") == "1":
        return False
    if args == ["status"]:
        from envctl.quick_status import answer

        out = answer(os.environ)
        return out is not None and _answered(out)
    if len(args) > 1 and args[0] == "status" and args[1].startswith("-"):
        from envctl.quick_status_remote import answer as remote_answer

        out = remote_answer(args[1:], os.environ)
        return out is not None and _answered(out)
    if args[:1] == ["exec"]:
        from envctl.quick_exec import answer as exec_answer

        # A run started is this command's answer: what escapes it exits as the full path's would.
        code = _with_command_exits(lambda: exec_answer(args, os.environ))
        if code is None:
            return False
        sys.exit(code)
    if args[:1] == ["up"]:
        from envctl.quick_up import answer as up_answer

        said = up_answer(args, os.environ)
        if said is None:
            return False
        out, err = said
        try:
            sys.stderr.write(err)
            sys.stderr.flush()
        except OSError:
            pass  # as typer's echo to a closed stderr: the outcome is the exit code
        _write(out)
        return True
    return False


def main() -> None:
    _standard_streams()
    try:
        _main()
    except KeyboardInterrupt:
        # Ctrl-C before the command runs (while typer and the commands are imported, or while
        # up/plan --host start opening their hosts): the exit the command's own Ctrl-C gives
        # (_main), not a traceback.
        sys.exit(130)
    finally:
        # What the command made lives until the process ends: frozen, it is left out of the
        # collection the interpreter makes on its way out, which otherwise walks every object
        # typer, pydantic and docker-py made (~0.2 s of an `up` over SSH, bench_remote.py).
        import gc

        gc.freeze()


def _standard_streams() -> None:
    """A standard stream closed when envctl starts (`envctl ... >&-`): Python gives it as None,
    and every command would fail writing to it, with a traceback. A closed stdin reads nothing,
    as /dev/null does; with stdout or stderr closed nothing is done and the exit is 2 (usage),
    said on the other stream when it is open."""
    if sys.stdin is None:
        sys.stdin = open(os.devnull, encoding="utf-8")
    closed = [name for name, stream in (("stdout", sys.stdout), ("stderr", sys.stderr)) if stream is None]
    if not closed:
        return
    told = sys.stderr or sys.stdout
    if told is not None:
        told.write(f"error: {' and '.join(closed)} closed (>&-): envctl writes its output and messages there\n"
                   "hint:  send what you do not want to /dev/null (>/dev/null) instead of closing it\n")
        told.flush()
    sys.exit(2)


def _main() -> None:
    if sys.argv[1:] == ["version"]:
        # The one command that needs nothing: printed before typer is imported (typer ≥ 0.2x parses
        # even an absent --help through pydantic). `envctl version --help` and every other form
        # go through the app below, whose `version` prints the same.
        from envctl import __version__

        _write(f"{__version__}\n")
        return
    if sys.argv[1:] == ["--help"] and getattr(sys.modules["__main__"], "__package__", None) in (None, ""):
        # Run as the `envctl` script (not `python -m envctl`, which click names otherwise): the
        # top-level help from the table, in about a third of the time typer takes to import.
        _write(top_level_help(os.path.basename(sys.argv[0])))
        return
    names = command_names_completed(os.path.basename(sys.argv[0]), os.environ)
    if names is not None:
        _write("".join(f"{name}\n" for name in names) or "\n")
        return
    from envctl import interrupts

    # Ctrl-C as the command's own, even where it was inherited ignored (a background job of a
    # script, nohup): the quick paths answer it as the full path does (130, nothing left
    # running), and from _open_hosts_early on a command may work on threads of its own, which it
    # must reach too (the answers above, version, help and completion, need none of it).
    interrupts.install()
    if _quick(sys.argv[1:]):
        return
    _open_hosts_early(sys.argv[1:])
    # Typer handles usage errors and --help itself (exit 2 / 0).
    from envctl.cli_app import app

    _with_command_exits(app)


def _with_command_exits(command):
    """command()'s value, with the exits every command has for what escapes it: an EnvctlError
    (user-fixable) printed with its exit code, Ctrl-C 130, a directory or file envctl writes
    that failed named, anything else an internal error (70; ENVCTL_DEBUG=1 shows the
    traceback). typer and the error printing are imported only when one escapes."""
    try:
        return command()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001  (each kind is told apart below)
        from envctl.cli_app import print_error
        from envctl.errors import EXIT_INTERNAL, EnvctlError

        if isinstance(exc, EnvctlError):
            print_error(exc)
            sys.exit(exc.exit_code)
        # A bug in envctl, not a user mistake ...
        if os.environ.get("ENVCTL_DEBUG") == "1":
            raise
        import traceback

        import typer

        from envctl.fs_errors import explain_os_error, is_path_error

        if is_path_error(exc):  # ... unless a directory or file envctl writes failed: name it
            error = explain_os_error(exc)
            print_error(error)
            sys.exit(error.exit_code)
        typer.echo("error: envctl hit an internal error (a bug). Run again with ENVCTL_DEBUG=1 for the traceback.", err=True)
        typer.echo("       " + traceback.format_exc().strip().splitlines()[-1], err=True)
        sys.exit(EXIT_INTERNAL)
