"""`envctl export`: write what a cluster engine runs for a multi-node entrypoint, and check an
export offline (`envctl export --check DIR [--crd FILE]...`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from envctl.cli_app import app, say
from envctl.cli_vars import given, var_option
from envctl.errors import EXIT_USAGE, EnvctlError

EXIT_CHECK_FAILED = 1  # problems found by --check (as a linter exits)


@app.command("export")
def export_command(
    name: str = typer.Argument(..., help="NAME, NAME:VARIANT, NAME:A+B or a manifest path; with --check alone: the export directory"),
    vars: Optional[List[str]] = var_option(),
    entrypoint: Optional[str] = typer.Option(None, "--entrypoint", "-e", help="the multi-node entrypoint (it declares nodes:)"),
    nodes: Optional[int] = typer.Option(None, "--nodes", "-n", help="how many nodes (two or more)"),
    format_name: str = typer.Option("volcano", "--format", "-f", help="volcano (default), ascendjob, pytorchjob, k8s-job, "
                                    "slurm, shell"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="the directory to write (default: print to stdout)"),
    as_json: bool = typer.Option(False, "--json", help="print the files as one JSON object {name: text}"),
    check: bool = typer.Option(False, "--check", help="validate offline: what this command writes, or the directory NAME"),
    crds: Optional[List[Path]] = typer.Option(None, "--crd", help="a CustomResourceDefinition file (kubectl get crd X -o yaml) "
                                              "to check custom kinds against; repeatable"),
    cards: Optional[int] = typer.Option(None, "--cards", help="cards per node (default: the manifest's device.cards count)"),
    master_port: Optional[int] = typer.Option(None, "--master-port", min=1, max=65535, help="the master port (default: the launcher's)"),
    sets: Optional[List[str]] = typer.Option(None, "--set", help="key=value overriding a parameter; repeatable"),
    data_dir: str = typer.Option("/root/.local/share/envctl", "--data-dir", help="envctl's directory on every node "
                                 "(cache/, workspaces/; what `envctl fetch --hosts` fills)"),
    claim: Optional[str] = typer.Option(None, "--pvc", help="a PersistentVolumeClaim holding that directory instead"),
    image: Optional[str] = typer.Option(None, "--image", help="the image to run (the baked one `envctl build` printed)"),
    pull_secret: Optional[str] = typer.Option(None, "--pull-secret", help="Kubernetes formats, a pulled image: the "
                                              "kubernetes.io/dockerconfigjson Secret the pods name in imagePullSecrets"),
    args: Optional[List[str]] = typer.Argument(None, help="extra arguments for the command, after --"),
) -> None:
    """Write the jobs a cluster engine runs for ENTRYPOINT on N nodes, from the plan `exec --nodes`
    runs; or, with --check and a directory, validate an export offline (exit 1 on a problem)."""
    from envctl.export import formats
    from envctl.export.files import render, write_directory

    if check and entrypoint is None:
        if vars:
            raise EnvctlError("--check DIR checks an export already written: drop --var", exit_code=EXIT_USAGE)
        raise typer.Exit(_check_directory(Path(name), list(crds or [])))
    if entrypoint is None or nodes is None:
        raise EnvctlError("give --entrypoint ENTRY and --nodes N (or --check DIR to check an export)", exit_code=EXIT_USAGE)
    fmt = formats.get(format_name)
    from envctl.export.model import build_export
    from envctl.manifest.loader import load

    loaded = load(name, vars=given(vars))
    export = build_export(loaded, entrypoint, nodes, cards=cards, master_port=master_port, sets=tuple(sets or ()),
                          extra=tuple(args or ()), data_dir=data_dir, claim=claim, image=image, image_baked=bool(image),
                          pull_secret=pull_secret)
    files = render(export, fmt)
    if output is not None:
        for path in write_directory(output, files, fmt.name):
            say(f"wrote {path}")
        if check:
            raise typer.Exit(_check_directory(output, list(crds or [])))
        return
    if check:
        import tempfile

        with tempfile.TemporaryDirectory() as scratch:
            write_directory(Path(scratch), files, fmt.name)
            code = _check_directory(Path(scratch), list(crds or []))
        if code:
            raise typer.Exit(code)
    if as_json:
        typer.echo(json.dumps(files, indent=2, ensure_ascii=False))
    else:
        for file_name, text in sorted(files.items()):
            typer.echo(f"# ---- {file_name}\n{text}", nl=False)


def _check_directory(directory: Path, crds: list[Path]) -> int:
    from envctl.export import formats

    if not directory.is_dir():
        raise EnvctlError(f"{directory} is not a directory (an export written with -o)", exit_code=EXIT_USAGE)
    name = formats.format_of(directory)
    if name is None:
        raise EnvctlError(f"{directory} holds no .envctl-export marker: it was not written by envctl export",
                          exit_code=EXIT_USAGE)
    fmt = formats.get(name)
    if fmt.check is None:
        say(f"{directory}: format {name} has no offline check")
        return 0
    problems = fmt.check(directory, crds)
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
    if problems:
        say(f"{directory}: {len(problems)} problem(s)")
        return EXIT_CHECK_FAILED
    say(f"{directory}: ok ({name})")
    return 0
