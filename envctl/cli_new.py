"""`envctl new`: start a manifest from a shipped (or any found) one, or from a docker run command."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer

from envctl.cli_app import app, say
from envctl.errors import EXIT_USAGE, EnvctlError
from envctl.manifest import discovery


@app.command("new")
def new_command(
    name: str = typer.Argument(..., help="the new manifest's name (its directory's name too)"),
    source: Optional[str] = typer.Option(None, "--from", help="copy this manifest (NAME or path): renamed, its "
                                         "pins marked to review, its files and profiles brought along"),
    docker_run: Optional[str] = typer.Option(None, "--from-docker-run", help="a `docker run ...` command (as a "
                                             "quick start shows it; - reads it from stdin) made into a manifest"),
    root: Optional[Path] = typer.Option(None, "--dir", "-d", help="the manifest root to write NAME/manifest.yaml "
                                        "into (default ./manifests, which envctl searches)"),
    force: bool = typer.Option(False, "--force", help="replace NAME's directory when it exists"),
) -> None:
    """Start a manifest: a copy of another (--from) or a vendor's docker run command (--from-docker-run),
    written to ./manifests/NAME/manifest.yaml (or --dir ROOT) and checked as `validate` checks it."""
    from envctl.new_manifest import check_free, copy_manifest, destination

    if (source is None) == (docker_run is None):
        raise EnvctlError("give --from MANIFEST or --from-docker-run 'docker run ...' (one of them)", exit_code=EXIT_USAGE)
    cwd = Path.cwd()
    target = destination(name, root, cwd)
    roots = discovery.search_roots()
    if source is not None:
        copied = copy_manifest(source, name, target, force, roots)
        say(f"wrote {copied.file} (copied from {source}; {len(copied.pins)} pin(s) marked `# review:`)")
        for what, items in (("made absolute", copied.absolute), ("profiles copied", copied.profiles),
                            ("build contexts copied", copied.contexts),
                            ("not copied (one user's env files: write your own)", copied.left_out)):
            if items:
                say(f"{what}: {', '.join(items)}")
    else:
        from envctl.docker_run import read_command
        from envctl.docker_run_manifest import manifest_from_run
        from envctl.new_manifest import write_checked

        text = sys.stdin.read() if docker_run == "-" else docker_run
        check_free(target, force)
        # $PWD and $(pwd) are this directory, as the shell that ran the command would have them
        # (an inherited PWD can be stale when envctl is started by another program with a cwd)
        manifest_text, warnings = manifest_from_run(name, read_command(text, {**os.environ, "PWD": str(cwd)}), cwd)
        written = write_checked(target, manifest_text, roots)
        for warning in warnings:
            say(f"warning: {warning}")
        say(f"wrote {written}")
    if not any(r.path.resolve() == target.parent.resolve() for r in roots):
        say(f"note: {target.parent} is not a root envctl searches; name it by path ({target}) or add it to "
            f"ENVCTL_MANIFEST_PATH")
    else:
        say_same_name(name, target, roots, say)
    typer.echo(str(target / discovery.MANIFEST_FILE))


def say_same_name(name: str, target: Path, roots, say) -> None:
    """Another manifest of the same NAME in another search root: the earliest root wins a name
    (README, Where manifests are found), so either the new one now hides it, or it hides the
    new one and `envctl up NAME` would not run what was just written."""
    order = [r.path.resolve() for r in roots]
    mine = order.index(target.parent.resolve())
    for index, root in enumerate(roots):
        other = root.path / name / discovery.MANIFEST_FILE
        if index == mine or not other.is_file():
            continue
        if index > mine:
            say(f"note: {name} now hides the manifest of that name in {root.path} ({root.origin}); `envctl list` "
                f"shows what each name finds")
        else:
            say(f"warning: {other} ({root.origin}) is found first for the name {name}: commands given {name} run it, "
                f"not this one; name this one by path ({target}) or give another NAME")
