"""Commands about images on this machine's engine: image, build, save, load."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from envctl.cli_app import app, local_host, parse_cards, plan_here, say
from envctl.cli_vars import given, var_option
from envctl.errors import EXIT_NOT_FOUND, EnvctlError
from envctl.runtime_env import ENV_FILE_HELP


@app.command()
def image(
    name: str = typer.Argument(..., help="NAME, NAME:VARIANT, NAME:A+B or a manifest path"),
    vars: Optional[List[str]] = var_option(),
    offline: bool = typer.Option(False, "--offline", help="use a cached tarball only"),
) -> None:
    """Make sure the manifest's image is on the engine (load, build or pull it, as `up` would), and
    nothing else: for preparing a box before its artifacts are ready."""
    from envctl import apply
    from envctl.artifacts.cache import Cache
    from envctl.engine import connect, local_socket
    from envctl.image_step import ensure_image
    from envctl.images import IdentityCache
    from envctl.manifest.loader import load
    from envctl.paths import cache_dir
    from envctl.plan import Options
    from envctl.progress import ByteProgress

    loaded = load(name, vars=given(vars))
    client = connect()
    the_plan = plan_here(loaded, Options(skip_driver_check=True), client)
    cache = Cache(cache_dir())
    if the_plan.image.origin == "pull":  # pulled through the engine, as up pulls (envctl/registry_step.py)
        from envctl.registry_step import ensure_pulled

        with ByteProgress() as progress:
            outcome, _ = ensure_pulled(local_host(), client, loaded, the_plan, cache, say, progress, offline)
        typer.echo(outcome.image_id)
        return
    with ByteProgress() as progress:
        tarball = apply.local_tarball(client, loaded, the_plan, cache, progress, offline)
        outcome = ensure_image(client, the_plan.image, tarball, IdentityCache(cache.root / "state" / "tarballs.json"), progress,
                               local_socket())
    say(f"image      {the_plan.image.ref}: {outcome.action}" + (f" ({outcome.note})" if outcome.note else ""))
    typer.echo(outcome.image_id)


@app.command()
def build(
    name: str = typer.Argument(..., help="NAME, NAME:VARIANT, NAME:A+B or a manifest path"),
    vars: Optional[List[str]] = var_option(),
    cards: Optional[str] = typer.Option(None, "--cards", help="card indices to bake with (default: device.cards)"),
    skip_driver_check: bool = typer.Option(False, "--skip-driver-check", help="do not stop on a driver mismatch"),
    env_files: Optional[List[Path]] = typer.Option(None, "--env-file", help=ENV_FILE_HELP),
) -> None:
    """Bake the image with the setup steps inside, tagged by the hash of its inputs; `up` then uses it.
    The steps get container.pass_env as `up` gives it; the values stay out of the image's configuration."""
    from envctl import apply, bake, runtime_env
    from envctl.engine import connect
    from envctl.manifest.loader import load
    from envctl.plan import Options
    from envctl.progress import ByteProgress

    loaded = load(name, vars=given(vars))
    runtime = runtime_env.for_manifest(loaded, tuple(map(str, env_files or ())))
    client = connect()
    # force: a bake touches no container, so work running in one is no reason to refuse it.
    the_plan = plan_here(loaded, Options(cards=parse_cards(cards), skip_driver_check=skip_driver_check, force=True), client)
    if the_plan.baked:  # the inputs have not changed since the last bake
        ref, action = the_plan.baked, "present"
    else:
        with ByteProgress() as progress:
            base = apply.prepare(local_host(), loaded, the_plan, say, progress)
        ref, action = bake.bake(client, the_plan, base.image_id, say, runtime)
    say(f"baked      {ref}: {action}")
    typer.echo(ref)


@app.command()
def save(
    name: str = typer.Argument(..., help="NAME, NAME:VARIANT, NAME:A+B or a manifest path"),
    vars: Optional[List[str]] = var_option(),
    output: Path = typer.Option(..., "-o", "--output", help="the tarball to write (.tar or .tar.gz)"),
) -> None:
    """Write the baked image as a tarball for air-gapped servers (load it there with `envctl load`)."""
    from envctl import bake
    from envctl.engine import connect
    from envctl.manifest.loader import load
    from envctl.plan import Options

    loaded = load(name, vars=given(vars))
    client = connect()
    the_plan = plan_here(loaded, Options(skip_driver_check=True), client)
    if the_plan.baked is None:
        raise EnvctlError(f"{loaded.manifest.name} has no baked image for its current inputs on this host",
                          hint=f"run `envctl build {name}` first", exit_code=EXIT_NOT_FOUND)
    bake.save(client, the_plan.baked, output, say)


@app.command("load")
def load_command(tarball: Path = typer.Argument(..., help="a tarball written by `envctl save` or `docker save`")) -> None:
    """Load an image tarball into the engine, reading its identity from the tarball itself."""
    from envctl import bake
    from envctl.engine import connect, local_socket
    from envctl.progress import ByteProgress

    said: list[str] = []  # printed after the progress display is gone
    with ByteProgress() as progress:
        bake.load(connect(), tarball, said.append, progress(f"loading {tarball.name}", tarball.stat().st_size), local_socket())
    for line in said:
        say(line)
