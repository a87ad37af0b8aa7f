"""Load a manifest: YAML → profiles → variant → variables → validated, frozen Manifest.

Every problem found is collected and raised together as one ManifestError, each with its file,
line, column and dotted path, so a user fixes a manifest in one pass instead of one error per
run. Nothing here touches the host: loading is pure apart from reading the files.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from pydantic import ValidationError

from envctl.artifacts import lockfile
from envctl.artifacts.sources import Source, SourceError, parse_source
from envctl.cards import CardsError, count_of, parse_cards
from envctl.errors import ManifestError, Problem
from envctl.manifest import compose, discovery, docker_values, nodes_check, overrides as var_overrides, yaml_numbers
from envctl.manifest.errors_translate import suggest, translate_all
from envctl.manifest.interpolate import KEY_NOT_EXPANDED, Expander, expand_tree, looks_secret
from envctl.manifest.model import NAME_PATTERN, Manifest
from envctl.manifest.yamlsrc import Document, dotted, parse_file
from envctl.paths import WORKSPACE_TARGET

DEFAULT_ARTIFACT_DIR = "/opt/envctl/artifacts"
_MOUNT_MODES = {"ro", "rw"}
_BARE_VARIABLE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")  # a shell's $HOME, which envctl leaves alone


@dataclass(frozen=True)
class Loaded:
    """A validated manifest and what was learnt while loading it."""

    manifest: Manifest
    file: Path
    sources: dict[str, Source | None]  # artifact name → source, pinned by the lock file (None: must be provided)
    image_source: Source | None
    secrets: frozenset[str] = field(default_factory=frozenset)  # values to redact in any output
    written: dict[str, str] = field(default_factory=dict)  # artifact name → source as written (the lock's key)
    locks: dict = field(default_factory=dict)  # artifact name → lockfile.Locked, where the lock has it
    image_lock: object | None = None  # lockfile.Locked of the image tarball (or pulled image), where the lock has it
    # --var values that changed a var (typed as the manifest's; one equal to the manifest's own
    # value is not kept), recorded with the environment `up` makes (overrides.recorded)
    overrides: dict = field(default_factory=dict)
    trace: object | None = field(default=None, repr=False, compare=False)  # provenance.Trace: what set each value

    @property
    def directory(self) -> Path:
        return self.file.parent

    def artifact_target(self, name: str) -> str:
        return self.manifest.artifacts[name].target or f"{DEFAULT_ARTIFACT_DIR}/{name}"


def load(reference: str | Path, environ: Mapping[str, str] | None = None, roots=None, variant: str | None = None,
         use_lock: bool = True, vars: Mapping[str, str] | None = None) -> Loaded:
    """Load NAME, NAME:VARIANT, NAME:A+B or a path. Raises ManifestNotFound or ManifestError.
    `use_lock=False` ignores the lock file (for `envctl lock`, which resolves afresh). `vars`:
    `--var` values as text (name → value; overrides.py types them), which override the
    manifest's `vars`; an unknown name or a value of the wrong type raises EnvctlError (exit 2)."""
    environ = os.environ if environ is None else environ
    roots = discovery.search_roots(environ) if roots is None else roots
    name, selected = discovery.split_variant(str(reference))
    path = discovery.find_manifest(name, roots)
    return load_file(path, environ, roots, variant or selected, use_lock, vars)


def load_file(path: Path, environ: Mapping[str, str], roots, variant: str | None = None, use_lock: bool = True,
              vars: Mapping[str, str] | None = None) -> Loaded:
    doc, problems = parse_file(path)
    if doc is None:
        raise ManifestError(problems)
    if not isinstance(doc.data, dict):
        raise ManifestError(problems + [Problem(str(path), 1, 1, "", "a manifest must be a mapping of keys (name:, device:, ...)")])
    if "variant" in doc.data:
        problems.append(_at(doc, ("variant",), "'variant' is set by envctl; choose one with NAME:VARIANT", key=True))

    doc, extend_problems = compose.resolve_extends(doc, discovery.profile_roots(path, roots))
    problems += extend_problems
    doc, chosen, variant_problems = compose.apply_variant(doc, variant)
    problems += variant_problems
    doc = _without_extension_fields(doc)

    given = _typed_overrides(doc, vars or {})
    expander = Expander({}, environ)
    data, kept = _expand(doc, expander, problems, given)
    # Sources are checked on the raw data so that their problems are reported in the same
    # pass as schema problems.
    sources, image_source = _parse_sources(data, doc, path.parent, problems)
    problems += _check_references(data, doc, path.parent)
    problems += nodes_check.problems(data, doc)
    problems += [_at(doc, where, message) for where, message in yaml_numbers.problems(data, doc.positions.written)]
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        problems += _not_told_yet(problems, translate_all(exc.errors(include_url=False), Manifest, doc, data))
        raise ManifestError(_told(problems, expander, given)) from None
    if problems:
        raise ManifestError(_told(problems, expander, given))

    secrets = set(expander.secrets)
    for env in [manifest.container.env] + [s.env for s in manifest.setup] + [e.env for e in manifest.entrypoints.values()]:
        secrets.update(v for k, v in env.items() if looks_secret(k) and v)
    secrets.update(s.password for s in list(sources.values()) + [image_source] if s is not None and s.password)
    written = {name: source.display for name, source in sources.items() if source is not None}
    pinned, locks, image_lock = _apply_lock(path, sources, image_source) if use_lock else (sources, {}, None)
    if use_lock and manifest.image.pull:
        from envctl.registry_refs import lock_key

        image_lock = lockfile.read(path).get(lock_key(manifest.image.ref))  # revision: the manifest digest
    from envctl.manifest.provenance import Trace

    trace = Trace(doc.positions, dict(expander.used), dict(given), str(path), by_default=variant is None)
    return Loaded(manifest, path, pinned, image_source, frozenset(secrets), written, locks, image_lock, kept, trace)


def _without_extension_fields(doc: Document) -> Document:
    """Top-level keys starting with `x-` hold blocks for anchors to point at (`x-defaults: &d`),
    as in Compose files (https://docs.docker.com/reference/compose-file/extension/); envctl
    reads nothing from them."""
    if not any(isinstance(key, str) and key.startswith("x-") for key in doc.data):
        return doc
    data = {k: v for k, v in doc.data.items() if not (isinstance(k, str) and k.startswith("x-"))}
    return Document(data, doc.positions, doc.file)


def _apply_lock(path: Path, sources: dict[str, Source | None], image_source: Source | None):
    """Replace refs by the commits the lock recorded, so that a moved branch or tag changes
    nothing until `envctl lock` is run again."""
    entries = lockfile.read(path)
    pinned, locks = {}, {}
    for name, source in sources.items():
        entry = entries.get(source.display) if source is not None else None
        if entry is not None:
            locks[name] = entry
            if entry.revision and source.kind in ("git", "hf", "hf-dataset", "modelscope"):
                source = dataclasses.replace(source, revision=entry.revision)
        pinned[name] = source
    image_lock = entries.get(image_source.display) if image_source is not None else None
    return pinned, locks, image_lock


def _typed_overrides(doc: Document, given: Mapping[str, str]) -> dict:
    """The --var values, checked against the vars the manifest declares once its profiles and
    variants are merged, in the types the manifest gives them (overrides.py)."""
    if not given:
        return {}
    declared = doc.data.get("vars")
    declared = declared if isinstance(declared, dict) else {}
    name = doc.data.get("name")
    reference = str(name) + (f":{doc.data['variant']}" if doc.data.get("variant") else "") if isinstance(name, str) else doc.file
    var_overrides.check_names(given, list(declared), _referenced_names(doc.data), reference)
    return {key: var_overrides.typed(key, text, declared[key]) for key, text in given.items()}


def _referenced_names(data) -> set[str]:
    """Names the manifest reads as ${NAME} or ${NAME:-default}."""
    if isinstance(data, dict):
        return {name for value in data.values() for name in _referenced_names(value)}
    if isinstance(data, list):
        return {name for value in data for name in _referenced_names(value)}
    if isinstance(data, str):
        return {m.group(1).partition(":-")[0] for m in re.finditer(r"\$\{([^}]*)\}", data)}
    return set()


def _expand(doc: Document, expander: Expander, problems: list[Problem], given: Mapping | None = None) -> tuple[dict, dict]:
    """Expand variables: first `vars` (from --var, the environment and earlier vars), then the
    rest. Returns (data, the --var values that differ from the manifest's own value). A var
    given by --var is not expanded from the manifest at all: its own ${...} may name a
    variable that only --var was meant to replace."""
    given = dict(given or {})

    def report(path: tuple, message: str) -> None:
        problems.append(_at(doc, path, message))

    data = dict(doc.data)
    raw_vars = data.get("vars")
    kept = {}
    expander.vars = dict(given)
    if isinstance(raw_vars, dict):
        expanded_vars = {}
        for key, value in raw_vars.items():
            if key in given:
                quiet = Expander(expander.vars, expander.environ)
                told: list = []
                own = expand_tree(value, quiet, lambda _path, message: told.append(message), ("vars", key))
                if told or own != given[key]:
                    kept[key] = given[key]
                expanded_vars[key] = given[key]
            else:
                expanded_vars[key] = expand_tree(value, expander, report, ("vars", key))
            expander.vars = {**expanded_vars, **given}
        data["vars"] = expanded_vars
    # variants were consumed by compose.apply_variant; their text is not this variant's.
    return {k: (v if k in ("vars", "variants") else expand_tree(v, expander, report, (k,))) for k, v in data.items()}, kept


def _at(doc: Document, path: tuple, message: str, key: bool = False) -> Problem:
    pos = doc.positions.of_key(path) if key else doc.positions.of_value(path)
    if pos is None:
        return Problem(doc.file, None, None, dotted(path), message)
    return Problem(pos.file, pos.line, pos.column, dotted(path), message)


def _told(problems: list[Problem], expander: Expander, given: Mapping) -> list[Problem]:
    """The problems as shown: sorted, each value from a --var or the environment traced to it,
    and the values of secret-looking variables masked (a token expanded into a source that is
    then refused would otherwise be printed in the refusal)."""
    from envctl.masking import mask

    named = {p.path for p in problems if KEY_NOT_EXPANDED not in p.message}
    problems = [p for p in problems if KEY_NOT_EXPANDED not in p.message or p.path not in named]  # one per key
    told = var_overrides.with_outside_values(_sorted(problems), expander.used, given)
    if not expander.secrets:
        return told
    return [dataclasses.replace(p, message=mask(p.message, expander.secrets)) for p in told]


def _not_told_yet(told: list[Problem], schema: list[Problem]) -> list[Problem]:
    """The schema's problems less the type errors at a value an earlier check already called
    the wrong type (`extends: [null]` is refused by the profile merge, then again by the
    schema): one wrong value, one problem."""
    typed = {(p.file, p.line, p.column, p.path) for p in told if p.message.startswith("expected ")}
    return [p for p in schema if not (p.message.startswith("expected ") and (p.file, p.line, p.column, p.path) in typed)]


def _sorted(problems: list[Problem]) -> list[Problem]:
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: (p.file, p.line or 0, p.column or 0, p.path))


def _parse_sources(data: dict, doc: Document, base: Path, problems: list[Problem]):
    """Parse every artifact source and the image tarball source found in the (raw) data."""
    sources: dict[str, Source | None] = {}

    def parse(text, path: tuple) -> Source | None:
        if not isinstance(text, str) or not text:
            return None  # absent, empty (must be obtained) or mistyped: the model reports it
        try:
            source = parse_source(text, base)
        except SourceError as exc:
            problems.append(_at(doc, path, str(exc)))
            return None
        bare = _BARE_VARIABLE.search(text)
        if source.kind == "file" and bare:
            # A shell's $HOME; envctl would look for a directory named $HOME beside the manifest.
            problems.append(_at(doc, path, f"'{text}': a bare ${bare.group(1)} is not expanded in a path; write ${{{bare.group(1)}}}"))
        return source

    artifacts = data.get("artifacts")
    for name, artifact in (artifacts.items() if isinstance(artifacts, dict) else []):
        if isinstance(artifact, dict):
            sources[name] = parse(artifact.get("source"), ("artifacts", name, "source"))
    image = data.get("image")
    tarball = image.get("tarball") if isinstance(image, dict) else None
    image_source = None
    if isinstance(tarball, dict):
        image_source = parse(tarball.get("source"), ("image", "tarball", "source"))
        if image_source is not None and image_source.kind not in ("file", "http", "ftp"):
            problems.append(_at(doc, ("image", "tarball", "source"), "an image tarball comes from a path, http(s):// or ftp://"))
        if not tarball.get("source") and not tarball.get("obtain"):
            problems.append(_at(doc, ("image", "tarball"), "no source: give a source, or an 'obtain' note telling users how to get it"))
    return sources, image_source


def _mapping(value) -> dict:
    return value if isinstance(value, dict) else {}


def _sequence(value) -> list:
    return value if isinstance(value, list) else []


def _card_count(value) -> int | None:
    """How many cards a request names, or None when it names none or the model refuses it
    (the model reports that, at its line)."""
    try:
        return None if value is None else count_of(parse_cards(value))
    except CardsError:
        return None


def _check_references(data: dict, doc: Document, base: Path) -> list[Problem]:
    """Cross-field rules the models cannot see on their own. They read the raw data, guarding
    every access, so that they report in the same pass as schema problems."""
    problems: list[Problem] = []

    def absolute(value, path: tuple) -> None:
        if isinstance(value, str) and value and not posixpath.isabs(value):
            problems.append(_at(doc, path, "a container path must be absolute"))

    artifacts = _mapping(data.get("artifacts"))
    names = list(artifacts)
    for index, step in enumerate(_sequence(data.get("setup"))):
        step = _mapping(step)
        for j, used in enumerate(_sequence(step.get("uses"))):
            if isinstance(used, str) and used not in artifacts:
                problems.append(_at(doc, ("setup", index, "uses", j), f"no artifact named '{used}'{suggest(used, names)}"))
        absolute(step.get("workdir"), ("setup", index, "workdir"))

    for name, artifact in artifacts.items():
        subpath = _mapping(artifact).get("subpath")
        if isinstance(subpath, str) and (posixpath.isabs(subpath) or ".." in subpath.split("/")):
            problems.append(_at(doc, ("artifacts", name, "subpath"), "a subpath is relative to the repository and stays inside it (no leading / or ..)"))

    targets: dict[str, str] = {}
    for name, artifact in artifacts.items():
        target = _mapping(artifact).get("target") or f"{DEFAULT_ARTIFACT_DIR}/{name}"
        if not isinstance(target, str):
            continue
        absolute(target, ("artifacts", name, "target"))
        normal = posixpath.normpath(target)
        if normal in targets:
            problems.append(_at(doc, ("artifacts", name, "target"), f"the same target as artifact '{targets[normal]}'"))
        targets[normal] = name

    container = _mapping(data.get("container"))
    # Docker refuses two mounts at one container path ("Duplicate mount point") and a mount at /.
    mount_targets = {posixpath.normpath(t): f"artifact '{n}'" for t, n in targets.items() if posixpath.isabs(t)}
    mount_targets[WORKSPACE_TARGET] = "envctl's workspace"
    for index, mount in enumerate(_sequence(container.get("mounts"))):
        message = _mount_problem(mount) if isinstance(mount, str) else None
        if message:
            problems.append(_at(doc, ("container", "mounts", index), message))
        elif isinstance(mount, str):
            target = posixpath.normpath(mount.split(":")[1])
            if target in mount_targets:
                problems.append(_at(doc, ("container", "mounts", index), f"'{target}' is already mounted ({mount_targets[target]}); Docker takes one mount per container path"))
            mount_targets[target] = f"container.mounts[{index}]"
    absolute(container.get("workdir"), ("container", "workdir"))
    # docker-py refuses port bindings with network_mode host ("incompatible with port_bindings");
    # the engine refuses them with container:<name> ("conflicting options: port publishing and
    # the container type network mode").
    network = container.get("network")
    if container.get("ports") and isinstance(network, str) and (network == "host" or network.startswith("container:")):
        whose = "the host's" if network == "host" else "that container's"
        set_at = doc.positions.of_value(("container", "network"))
        layer = getattr(set_at, "layer", "manifest")
        # A profile's network (ascend910 sets host) is not on the manifest's page: name it, and
        # the null that removes an inherited value.
        removal = "; `network: null` under the manifest's container removes it" if layer.startswith("profile") else ""
        ports_layer = getattr(doc.positions.of_value(("container", "ports")), "layer", "manifest")
        where = f" (set by {layer} at {set_at.file}:{set_at.line}{removal})" \
            if set_at is not None and layer not in ("manifest", ports_layer) else ""
        problems.append(_at(doc, ("container", "ports"), f"ports cannot be published with network '{network}'{where}: the "
                                                          f"container uses {whose} ports; remove ports or the network mode"))
    # envctl names baked images envctl-baked/<name>[-<variant>]: Docker wants that lowercase.
    name = data.get("name")
    for variant in [None, *_mapping(data.get("variants"))]:
        if variant and problems and problems[-1].path == "name":
            break  # the name itself is the problem
        if isinstance(name, str) and isinstance(variant, (str, type(None))):
            repository = name + (f"-{variant}" if variant else "")
            if not docker_values.repository_component(repository) and re.match(NAME_PATTERN, repository):
                where = ("variants", variant) if variant else ("name",)
                problems.append(_at(doc, where, f"'{repository}' names baked images (envctl-baked/{repository}); Docker needs "
                                                "lowercase letters and digits, separated by single '.', '_' or '-'", key=bool(variant)))

    device = _mapping(data.get("device"))
    cards = device.get("cards")
    if device.get("kind") == "cpu" and cards not in (None, 0, []):
        problems.append(_at(doc, ("device", "cards"), "a cpu environment has no cards"))
    available = _card_count(cards)
    for name, entry in _mapping(data.get("entrypoints")).items():
        entry = _mapping(entry)
        absolute(entry.get("workdir"), ("entrypoints", name, "workdir"))
        wanted = _card_count(entry.get("cards"))
        if wanted is not None and available is not None and wanted > available:
            problems.append(
                _at(doc, ("entrypoints", name, "cards"), f"uses {wanted} cards but the environment has {available} (device.cards)")
            )
        for param in _mapping(entry.get("params")):
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", param):
                problems.append(_at(doc, ("entrypoints", name, "params", param), f"'{param}' cannot be an environment variable name", key=True))

    build = _mapping(data.get("image")).get("build")
    if isinstance(build, str) and build_context(build, base) is None:
        problems.append(_at(doc, ("image", "build"), f"no build context directory '{build}' beside the manifest or in images/"))
    variants = _mapping(data.get("variants"))
    default = data.get("default_variant")
    wrong = compose.selection_problem(compose.variant_parts(default), default, variants) if isinstance(default, str) and variants else None
    if wrong:
        problems.append(_at(doc, ("default_variant",), wrong))
    return problems


def build_context(build: str, manifest_dir: Path) -> Path | None:
    """Where `image.build` points: beside the manifest, or (for `images/<dir>`) in the images/
    directory next to manifests/ in a checkout, or in the images shipped inside the package."""
    candidates = [manifest_dir / build, manifest_dir.parent.parent / build]
    if build.startswith("images/"):
        candidates.append(Path(__file__).resolve().parents[1] / "shipped_images" / build[len("images/"):])
    for candidate in candidates:
        if candidate.resolve().is_dir():
            return candidate.resolve()
    return None


def _mount_problem(mount: str) -> str | None:
    parts = mount.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        return f"'{mount}' is not a mount (write host_path:container_path[:ro|rw])"
    if parts[0].startswith("~"):
        # Compose and shells expand `~`; envctl would take it as a directory named ~ beside the manifest.
        return f"'{parts[0]}': '~' is not expanded in a mount; write ${{HOME}}{parts[0][1:]} for your home directory"
    bare = _BARE_VARIABLE.search(parts[0])
    if bare:
        return f"'{parts[0]}': a bare ${bare.group(1)} is not expanded in a mount; write ${{{bare.group(1)}}}"
    if not posixpath.isabs(parts[1]):
        return f"'{parts[1]}': the container path must be absolute"
    if posixpath.normpath(parts[1]) == "/":
        return f"'{mount}': Docker cannot mount over the container's root (/)"
    if len(parts) == 3 and parts[2] not in _MOUNT_MODES:
        return f"'{parts[2]}' is not a mount mode (ro or rw){suggest(parts[2], _MOUNT_MODES)}"
    return None
