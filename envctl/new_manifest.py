"""`envctl new NAME --from SOURCE`: a manifest bundle copied under a new name.

The copy is a bundle directory `<root>/NAME/` (root: ./manifests by default, which envctl
searches) holding everything the source's directory holds (scripts, patches, build contexts,
its manifest.lock), with the manifest's text edited in place, so that every comment and the
layout stay as they were:

- `name:` is NAME; a `container.name` the source fixed is renamed too (two environments would
  otherwise share one container).
- Every pin is marked `# review: pinned for SOURCE` at the end of its line, and listed in a
  header comment: image.id, a ref's @sha256 digest, the tarball's sha256, artifact revisions
  (`@ref` of hf://, modelscope:// and git sources, and the vars they take it from) and sha256s,
  and device.driver specifiers, in the manifest and its variants.
- Profiles it extends by name keep resolving from the new place: a profile found there only
  through ENVCTL_MANIFEST_PATH or ./manifests (which change with the shell and the directory),
  or shadowed there by another of the same name, is copied into the bundle's profiles/.
- Relative paths (mounts, artifact and tarball paths, env_file, image.build) that point outside
  the source's directory are written as absolute paths; a build context outside it, named as
  `images/<dir>`, is copied into the bundle.

The result is built in a temporary directory beside the destination and loaded with the real
loader (every variant) before it takes the destination's place: a copy that does not validate is
never left behind. Nothing existing is replaced without `force`.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from envctl.artifacts.lockfile import LOCK_NAME
from envctl.errors import EXIT_USAGE, EnvctlError, ManifestError
from envctl.manifest import discovery, docker_values
from envctl.manifest.model import NAME_PATTERN
from envctl.manifest_edit import Edits, mark_pins, relocate_paths, rename
from envctl.manifest.yamlsrc import parse_file

REVIEW = "review: pinned for {source}"


@dataclass
class Copied:
    """What `copy_manifest` wrote: the manifest file, the pins marked (dotted paths), the paths
    made absolute, the profiles copied, the build contexts copied."""

    file: Path
    pins: list[str] = field(default_factory=list)
    absolute: list[str] = field(default_factory=list)
    profiles: list[str] = field(default_factory=list)
    contexts: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)


def destination(name: str, root: Path | None, cwd: Path) -> Path:
    """The bundle directory for NAME: <root>/NAME, root defaulting to ./manifests."""
    if not re.match(NAME_PATTERN, name) or not docker_values.repository_component(name):
        raise EnvctlError(f"'{name}' cannot be a manifest name (letters, digits, . _ -, starting with a letter or "
                          f"digit; lowercase, as it names baked images too)", exit_code=EXIT_USAGE)
    return (root if root is not None else cwd / "manifests").absolute() / name


def check_free(target: Path, force: bool) -> None:
    if target.exists() and not force:
        raise EnvctlError(f"{target} exists; not overwritten", hint="give --force to replace it, or another NAME",
                          exit_code=EXIT_USAGE)
    if target.exists() and not target.is_dir():
        raise EnvctlError(f"{target} exists and is not a directory; not replaced", exit_code=EXIT_USAGE)


def copy_manifest(reference: str, name: str, target: Path, force: bool, roots) -> Copied:
    """Copy the manifest `reference` (NAME or path) to the bundle directory `target`."""
    if discovery.split_variant(reference)[1]:
        raise EnvctlError(f"--from {reference}: a variant is part of its manifest; give the manifest "
                          f"({discovery.split_variant(reference)[0]}), every variant is copied", exit_code=EXIT_USAGE)
    source_file = discovery.find_manifest(reference, roots).resolve()
    source_dir = source_file.parent
    source_name = _name_of(source_file)
    if target.resolve() == source_dir or source_dir in target.resolve().parents or target.resolve() in source_dir.parents:
        raise EnvctlError(f"{target} is {source_name}'s own directory (or holds it); copy it to another place",
                          exit_code=EXIT_USAGE)
    check_free(target, force)
    work = _work_dir(target)
    try:
        # A bundle directory is copied whole; a manifest file of another name (a path given to
        # --from) may sit among unrelated files: only it is taken, its relative paths made absolute.
        bundle = source_file.name == discovery.MANIFEST_FILE
        if bundle:
            # Links stay links: a link to a file outside the bundle (a host's /etc file, a model
            # directory) is not turned into a copy of what it points at.
            left_out = _not_copied(source_file)
            shutil.copytree(source_dir, work, dirs_exist_ok=True, symlinks=True,
                            ignore=lambda folder, names: _ignored(source_dir, Path(folder), names, left_out))
        elif (source_dir / LOCK_NAME).is_file():
            shutil.copyfile(source_dir / LOCK_NAME, work / LOCK_NAME)  # the lock beside it is its lock
        copied = Copied(target / discovery.MANIFEST_FILE)
        new_file = work / discovery.MANIFEST_FILE
        text = source_file.read_bytes().decode("utf-8-sig")  # line ends kept as they are (CRLF too)
        edits = Edits(text)
        rename(edits, source_name, name)
        copied.pins = mark_pins(edits, REVIEW.format(source=source_name))
        copied.absolute, contexts = relocate_paths(edits, source_dir, work, copied=bundle)
        for build, context in contexts:
            shutil.copytree(context, work / build, dirs_exist_ok=True)
            copied.contexts.append(build)
        copied.profiles = _profiles(source_file, work, target, roots)
        copied.left_out = sorted(str(p.relative_to(source_dir)) for p in left_out if p.exists()) if bundle else []
        header = _header(name, source_name, reference, source_file, copied, (work / LOCK_NAME).exists())
        if "\r\n" in text:
            header = header.replace("\n", "\r\n")
        new_file.write_bytes((header + edits.apply()).encode("utf-8"))
        _check_loads(new_file, roots, target)
        _take_place(work, target)
        return copied
    finally:
        if work.exists():
            shutil.rmtree(work)


def write_checked(target: Path, text: str, roots) -> Path:
    """Write `text` (a manifest made from a docker run command) as target/manifest.yaml once it
    loads; returns the file. Raises ManifestError, writing nothing, when it does not."""
    work = _work_dir(target)
    try:
        (work / discovery.MANIFEST_FILE).write_text(text, encoding="utf-8")
        _check_loads(work / discovery.MANIFEST_FILE, roots, target, RUN_HINT)
        _take_place(work, target)
    finally:
        if work.exists():
            shutil.rmtree(work)
    return target / discovery.MANIFEST_FILE


def _work_dir(target: Path) -> Path:
    """A new empty directory beside `target` to build the bundle in (then renamed into place).
    A manifest root that cannot be written is a PathError (exit 5) naming it, with --dir as
    the way out (the generic hint names the cache and workspace settings, not this one)."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=target.parent))
    except OSError as exc:
        from envctl.fs_errors import PathError, explain_os_error

        said = explain_os_error(exc, target.parent)
        message = said.message if not target.parent.is_dir() or exc.errno not in (errno.ENOENT, errno.ENOTDIR) \
            else f"{target.parent} takes no new directories ({exc.strerror})"  # /proc, /sys: there, but not for files
        raise PathError(f"manifest root {message}", "give --dir a manifest root you can write (default "
                                                        "./manifests)", said.path, said.errno) from None


def _take_place(work: Path, target: Path) -> None:
    """`work` becomes `target`; a `target` there already (with --force) is removed after."""
    if target.exists():
        trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.replace(target, trash / target.name)
        os.replace(work, target)
        shutil.rmtree(trash)
    else:
        os.replace(work, target)


def _name_of(path: Path) -> str:
    document, problems = parse_file(path)
    if document is None or not isinstance(document.data, dict) or not isinstance(document.data.get("name"), str):
        raise ManifestError(problems or [], hint=f"{path} names no manifest (name:); fix it before copying it")
    return document.data["name"]


def _profiles(source_file: Path, work: Path, target: Path, roots) -> list[str]:
    """Copy into work/profiles the profiles the copy would not find (or would find another of)."""
    source_dirs = discovery.profile_roots(source_file, roots)
    lasting = [r for r in roots if r.origin in ("user", "shipped")]  # searched from any shell and directory
    new_dirs = [target.parent / discovery.PROFILE_DIR, work / discovery.PROFILE_DIR]
    new_dirs += [r.path / discovery.PROFILE_DIR for r in lasting]
    copied: list[str] = []
    pending = list(_extends_of(source_file))
    while pending:
        profile = pending.pop(0)
        found = discovery.find_profile(profile, source_dirs)
        if found is None or profile in copied:
            continue  # a missing profile: the source does not load either (reported by _check_loads)
        there = discovery.find_profile(profile, new_dirs)
        if there is not None and there.resolve() == found.resolve():
            continue
        shadow = target.parent / discovery.PROFILE_DIR / f"{profile}.yaml"
        if shadow.is_file() and shadow.resolve() != found.resolve():
            raise EnvctlError(f"{shadow} would take the place of profile '{profile}' ({found}) for a manifest in "
                              f"{target.parent}", hint="give --dir another manifest root", exit_code=EXIT_USAGE)
        (work / discovery.PROFILE_DIR).mkdir(exist_ok=True)
        shutil.copyfile(found, work / discovery.PROFILE_DIR / f"{profile}.yaml")
        copied.append(profile)
        pending += _extends_of(found)
    return copied


def _extends_of(path: Path) -> list[str]:
    document, _ = parse_file(path)
    value = document.data.get("extends") if document is not None and isinstance(document.data, dict) else None
    return [value] if isinstance(value, str) else [v for v in value or [] if isinstance(v, str)] if isinstance(value, list) else []


# Never copied with a bundle: version-control metadata (the source's history is not the copy's).
VCS_DIRS = (".git", ".hg", ".svn")


def _not_copied(source_file: Path) -> set[Path]:
    """The files of the source's bundle that stay behind: its env files (`container.env_file` of
    the manifest and its variants, and any `.env`): they hold the values of one user's passed
    secrets (README: "each user keeps their own"), which a copy made to be shared must not carry."""
    source_dir = source_file.parent
    document, _ = parse_file(source_file)
    data = document.data if document is not None and isinstance(document.data, dict) else {}
    variants = data.get("variants")
    layers = [data] + ([v for v in variants.values() if isinstance(v, dict)] if isinstance(variants, dict) else [])
    named = {source_dir / ".env"}
    for layer in layers:
        container = layer.get("container")
        env_file = container.get("env_file") if isinstance(container, dict) else None
        if isinstance(env_file, str) and env_file and "${" not in env_file:
            named.add(source_dir / env_file)  # an absolute one replaces source_dir (and is outside it)
    inside = {Path(os.path.normpath(p)) for p in named}
    return {p for p in inside if source_dir in p.parents}


def _ignored(source_dir: Path, folder: Path, names: list[str], left_out: set[Path]) -> set[str]:
    ignored = {n for n in names if n == "__pycache__" or n.endswith(".pyc")}
    if folder == source_dir:
        ignored |= {n for n in names if n in VCS_DIRS}
    return ignored | {n for n in names if Path(os.path.normpath(folder / n)) in left_out}


def _header(name: str, source: str, reference: str, source_file: Path, copied: Copied, lock: bool) -> str:
    lines = [f"# {name}: copied from {source} ({source_file}) by `envctl new {name} --from {reference}`."]
    if copied.pins:
        lines.append(f"# Pins chosen for {source} are marked `# review: pinned for {source}` ({len(copied.pins)}): "
                     f"check each for your hosts:")
        lines += [f"#   {pin}" for pin in copied.pins]
    if lock:
        lines.append(f"# manifest.lock was copied too: it holds what {source}'s sources resolved to; after changing "
                     f"a source, run `envctl lock {name}`.")
    for what, items in (("made absolute (they pointed outside its directory)", copied.absolute),
                        ("copied into profiles/ (not found the same from here)", copied.profiles),
                        ("build contexts copied", copied.contexts),
                        ("not copied (one user's env files: write your own)", copied.left_out)):
        if items:
            lines.append(f"# {what}: {', '.join(items)}")
    return "\n".join(lines) + "\n"


COPY_HINT = "nothing was written; the source has these problems too, or the copy cannot reach what they name"
RUN_HINT = "nothing was written; the docker run command holds these values, which envctl refuses"


def _check_loads(path: Path, roots, target: Path, hint: str = COPY_HINT) -> None:
    """Load every variant of the new manifest; a problem is a ManifestError naming the final path."""
    from envctl.manifest.loader import load_file

    variants = _variants(path)
    problems = []
    for variant in variants:
        try:
            load_file(path, os.environ, roots, variant)
        except ManifestError as exc:
            problems += exc.problems
    if problems:
        work = str(path.parent)
        fixed = [type(p)(p.file.replace(work, str(target)), p.line, p.column, p.path, p.message) for p in problems]
        raise ManifestError(list(dict.fromkeys(fixed)), hint=hint)


def _variants(path: Path) -> list[str | None]:
    document, _ = parse_file(path)
    variants = document.data.get("variants") if document is not None and isinstance(document.data, dict) else None
    return sorted(variants) if isinstance(variants, dict) and variants else [None]
