"""Commands about artifacts: fetch, lock, and the cache (ls, verify, gc)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import typer

from envctl.cli_app import app, say
from envctl.cli_vars import given, var_option
from envctl.cli_remote import accept_option, each_host, host_option, inventory_option, remote_options, ssh_config_option
from envctl.errors import EXIT_FETCH_FAILED, EXIT_USAGE, EnvctlError
from envctl.manifest import discovery

cache_app = typer.Typer(help="The artifact cache shared by every manifest on this host.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@app.command()
def fetch(
    name: str = typer.Argument(..., help="NAME, NAME:VARIANT, NAME:A+B or a manifest path"),
    vars: Optional[List[str]] = var_option(),
    offline: bool = typer.Option(False, "--offline", help="use the cache only; say what is missing"),
    only: Optional[List[str]] = typer.Option(None, "--only", help="fetch just this artifact; repeatable"),
    hosts: Optional[List[str]] = host_option(),
    ssh_config: Optional[str] = ssh_config_option(),
    inventory: Optional[str] = inventory_option(),
    accept_host_key: Optional[str] = accept_option(),
) -> None:
    """Fetch a manifest's artifacts into the cache (of the hosts named: pushed from this machine's
    cache, only what they lack, or downloaded there with `fetch: remote`), and make the writable
    copies `mode: rw` asks for: the artifact steps of `up`, starting nothing. Prints NAME<TAB>PATH
    for each artifact placed."""
    from dataclasses import replace

    from envctl.artifact_steps import place
    from envctl.manifest.loader import load
    from envctl.plan import Options
    from envctl.planning import plan_on
    from envctl.progress import ByteProgress

    loaded = load(name, vars=given(vars))
    unknown = [n for n in only or [] if n not in loaded.manifest.artifacts]
    if unknown:
        raise EnvctlError(f"{loaded.manifest.name} has no artifact {', '.join(unknown)}; artifacts: "
                          f"{', '.join(loaded.manifest.artifacts) or 'none'}", exit_code=EXIT_USAGE)
    remote = remote_options(hosts, ssh_config, inventory, accept_host_key)
    placed: list[tuple[str, str]] = []

    def work(host, echo) -> str:
        the_plan = plan_on(host, loaded, Options(skip_driver_check=True))
        if only:
            the_plan = replace(the_plan, artifacts=tuple(a for a in the_plan.artifacts if a.name in only))
        with ByteProgress() as progress:
            place(host, loaded, the_plan, echo, progress, offline)
        placed.extend((a.name, a.cache_path) for a in the_plan.artifacts)
        return f"{len(the_plan.artifacts)} artifact(s) in {host.cache_root}"

    code = each_host(remote, work, "fetch " + loaded.manifest.name)
    for artifact, path in placed if not remote.wanted else ():  # paths on this machine only
        typer.echo(f"{artifact}\t{path}")
    raise typer.Exit(code)


@app.command()
def lock(name: str = typer.Argument(..., help="NAME, NAME:VARIANT, NAME:A+B or a manifest path (every variant when none "
                                     "is named)"),
         vars: Optional[List[str]] = var_option()) -> None:
    """Resolve every ref to a commit and record every file's size and sha256 in manifest.lock,
    and a pulled image's tag to its manifest digest."""
    from envctl.artifacts import lockfile
    from envctl.artifacts.cache import Cache, PlacedFile
    from envctl.artifacts.fetch import fetch_all
    from envctl.images import IdentityCache, identify
    from envctl.manifest.loader import load
    from envctl.paths import cache_dir
    from envctl.progress import ByteProgress

    from envctl.cli_manifests import variant_names

    base, variant = discovery.split_variant(name)
    variants = [variant] if variant else (variant_names(base, discovery.search_roots()) or [None])
    cache = Cache(cache_dir())
    entries: dict[str, lockfile.Locked] = {}
    manifest_file = None
    with ByteProgress() as progress:
        for each in variants:
            loaded = load(base, use_lock=False, variant=each, vars=given(vars))
            manifest_file = loaded.file
            for item in fetch_all(loaded, cache, False, progress, say):
                entries[loaded.written[item.name]] = lockfile.Locked(loaded.written[item.name], item.revision, item.files)
            source = loaded.image_source
            if source is not None and source.kind == "file":
                identity = identify(Path(source.location), IdentityCache(cache.root / "state" / "tarballs.json"), True)
                entries[source.display] = lockfile.Locked(source.display, None, (PlacedFile("", identity.size, identity.sha256),))
            if loaded.manifest.image.pull:  # the manifest digest the tag names (envctl/registry_lock.py)
                from envctl.mirror_routes import here
                from envctl.registry_lock import lock_pulled

                entry = lock_pulled(loaded.manifest.image.ref, here().registries, say)
                entries[entry.source] = entry
    path = lockfile.write(manifest_file, entries)
    say(f"locked {len(entries)} source(s) in {path}")


@cache_app.command("ls")
def cache_ls() -> None:
    """The artifacts in the cache, with their sources and sizes."""
    from envctl.artifacts.cache_admin import listing
    from envctl.paths import cache_dir

    rows, blobs, blob_bytes = listing(cache_dir())
    for row in rows:
        revision = f" @ {row['revision'][:12]}" if row.get("revision") else ""
        typer.echo(f"{_size(row['bytes']):>9}  {row['source']}{revision}  ({row['key']})")
    typer.echo(f"{len(rows)} artifact(s); {blobs} blob(s), {_size(blob_bytes)} in {cache_dir()}")


@cache_app.command("verify")
def cache_verify() -> None:
    """Re-hash every cached file; a corrupt one is removed (with what used it) so the next fetch repairs it."""
    from envctl.artifacts.cache_admin import verify
    from envctl.paths import cache_dir

    checked, bad = verify(cache_dir())
    for item in bad:
        typer.echo(f"corrupt: {item}")
    typer.echo(f"{checked} file(s) checked, {len(bad)} corrupt")
    if bad:
        raise typer.Exit(EXIT_FETCH_FAILED)


@cache_app.command("gc")
def cache_gc(partial_days: int = typer.Option(14, "--partial-days", help="drop unfinished downloads older than this")) -> None:
    """Delete cached files no artifact uses and no manifest names, leftovers of interrupted runs,
    and old partial downloads. Image tarballs and artifacts a manifest still names are kept."""
    import os

    from envctl.artifacts.cache import Cache
    from envctl.artifacts.cache_admin import collect
    from envctl.artifacts.cache_keep import named_blobs
    from envctl.paths import cache_dir

    root = cache_dir()
    named = named_blobs(Cache(root), os.environ)
    for manifest in named.unreadable:
        say(f"note: manifest {manifest} could not be read; files only it names are not known to gc")
    removed, freed, kept = collect(root, time.time() - partial_days * 86400, named.reasons)
    for sha256, size, reasons in kept:
        typer.echo(f"kept {sha256[:12]} ({_size(size)}): {'; '.join(reasons)}")
    typer.echo(f"removed {removed} item(s), freed {_size(freed)}")


def _size(n: int) -> str:
    from envctl.summary import size_text  # one formatting of sizes, as the plan shows them

    return size_text(n)
