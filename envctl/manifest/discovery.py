"""Where manifests and profiles are found.

A manifest is a bundle directory `<root>/<name>/manifest.yaml` (with any small scripts of ours
beside it); profiles are `<root>/profiles/<name>.yaml`. Roots, earliest wins on a name clash:
ENVCTL_MANIFEST_PATH (os.pathsep-separated), ./manifests, the user's directory
($XDG_CONFIG_HOME/envctl/manifests), then the manifests shipped with envctl.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from envctl.errors import ManifestNotFound
from envctl.manifest.did_you_mean import suggest

MANIFEST_FILE = "manifest.yaml"
PROFILE_DIR = "profiles"


@dataclass(frozen=True)
class Root:
    path: Path
    origin: str  # "ENVCTL_MANIFEST_PATH", "./manifests", "user", "shipped"


@dataclass(frozen=True)
class Found:
    name: str
    path: Path
    root: Root
    shadowed_by: Path | None = None


def shipped_root() -> Path:
    """The shipped manifests: inside the installed package, or manifests/ of a source checkout."""
    package = Path(__file__).resolve().parents[1]
    installed = package / "shipped_manifests"
    return installed if installed.is_dir() else package.parent / "manifests"


def search_roots(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> list[Root]:
    environ = os.environ if environ is None else environ
    cwd = Path.cwd() if cwd is None else cwd
    roots: list[Root] = []
    for entry in environ.get("ENVCTL_MANIFEST_PATH", "").split(os.pathsep):
        if entry:
            roots.append(Root(Path(entry).expanduser(), "ENVCTL_MANIFEST_PATH"))
    roots.append(Root(cwd / "manifests", "./manifests"))
    config_home = Path(environ.get("XDG_CONFIG_HOME") or Path(environ.get("HOME", "~")) / ".config").expanduser()
    roots.append(Root(config_home / "envctl" / "manifests", "user"))
    roots.append(Root(shipped_root(), "shipped"))
    unique: list[Root] = []
    seen: set[Path] = set()
    for root in roots:
        resolved = root.path.resolve()
        if resolved not in seen:
            seen.add(resolved)
            unique.append(root)
    return unique


def list_manifests(roots: list[Root]) -> list[Found]:
    """Every manifest bundle in the roots, in search order; later duplicates are marked shadowed."""
    found: list[Found] = []
    first: dict[str, Path] = {}
    for root in roots:
        if not root.path.is_dir():
            continue
        for bundle in sorted(root.path.iterdir()):
            manifest = bundle / MANIFEST_FILE
            if bundle.name == PROFILE_DIR or not manifest.is_file():
                continue
            found.append(Found(bundle.name, manifest, root, first.get(bundle.name)))
            first.setdefault(bundle.name, manifest)
    return found


def split_variant(reference: str) -> tuple[str, str | None]:
    """'chinese-alpaca2-mlu:7b' → ('chinese-alpaca2-mlu', '7b'); a combination stays whole
    ('qwen:14b+merged' → ('qwen', '14b+merged'), split by compose.variant_parts); a path may
    carry ':variant' too."""
    if ":" in reference and not Path(reference).exists():
        base, _, variant = reference.rpartition(":")
        if base and variant:
            return base, variant
    return reference, None


def looks_like_path(reference: str) -> bool:
    return os.sep in reference or reference.endswith((".yaml", ".yml")) or Path(reference).is_file()


def find_manifest(reference: str, roots: list[Root]) -> Path:
    """A manifest file for a NAME or a PATH (file or bundle directory). Raises ManifestNotFound."""
    if looks_like_path(reference):
        path = Path(reference).expanduser().absolute()
        if path.is_dir():
            path = path / MANIFEST_FILE
        if not path.is_file():
            raise ManifestNotFound(f"no manifest file at {path}")
        return path
    for root in roots:
        candidate = root.path / reference / MANIFEST_FILE
        if candidate.is_file():
            return candidate
    names = sorted({f.name for f in list_manifests(roots)})
    message = f"no manifest named '{reference}'" + suggest(reference, names)
    base = reference.rstrip(":")
    if reference.endswith(":") and base and any((root.path / base / MANIFEST_FILE).is_file() for root in roots):
        message = (f"'{reference}' names no variant after ':'; write {base}:VARIANT (or {base}:A+B), or {base} for "
                   f"its default variant")
    looked = ", ".join(str(r.path) for r in roots)
    raise ManifestNotFound(message, hint=f"looked in {looked}; `envctl list` shows what is available")


def profile_roots(manifest_file: Path, roots: list[Root]) -> list[Path]:
    """Profile directories for a manifest: its own root's first, then every search root's."""
    dirs = [manifest_file.resolve().parent.parent / PROFILE_DIR, manifest_file.resolve().parent / PROFILE_DIR]
    dirs += [root.path / PROFILE_DIR for root in roots]
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def find_profile(name: str, directories: list[Path]) -> Path | None:
    for directory in directories:
        candidate = directory / f"{name}.yaml"
        if candidate.is_file():
            return candidate
    return None


def profile_names(directories: list[Path]) -> list[str]:
    names: set[str] = set()
    for directory in directories:
        if directory.is_dir():
            names.update(p.stem for p in directory.glob("*.yaml"))
    return sorted(names)
