"""Edits of a manifest's text in place, for `envctl new --from` (new_manifest.py): values
replaced and comments added at the ends of lines, located with PyYAML's composer (the safe
loader's nodes carry where each value starts and ends), so that everything else in the file (its
comments, quoting, block scalars, anchors, layout) stays byte for byte as it was."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from envctl.docker_run_render import scalar
from envctl.manifest.loader import build_context

_PINNED_SCHEMES = ("hf://", "modelscope://", "git+")
_VARIABLE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_.]*)\}$")


class Edits:
    """Replacements of scalar values and end-of-line comments, applied together by `apply`."""

    def __init__(self, text: str):
        self.text = text
        self.root = yaml.compose(text, Loader=yaml.SafeLoader)
        self.replacements: dict[tuple[int, int], str] = {}
        self.comments: dict[int, list[str]] = {}

    def node(self, *path, start=None):
        """The node at `path` (mapping keys, sequence indices) from `start` (the document), or None."""
        node = self.root if start is None else start
        for step in path:
            if isinstance(node, yaml.MappingNode):
                node = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == step), None)
            elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value):
                node = node.value[step]
            else:
                return None
            if node is None:
                return None
        return node

    def entries(self, node) -> list[tuple[str, object]]:
        if not isinstance(node, yaml.MappingNode):
            return []
        return [(k.value, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value != "<<"]

    def replace(self, node, value: str) -> None:
        self.replacements[(node.start_mark.index, node.end_mark.index)] = scalar(value)

    def comment(self, node, text: str) -> None:
        # A block scalar's comment goes on its header line (`key: >-  # ...`), inside it would be text.
        line = node.start_mark.line if getattr(node, "style", None) in ("|", ">") else node.end_mark.line
        if node.end_mark.column == 0 and line > node.start_mark.line:
            line -= 1
        texts = self.comments.setdefault(line, [])
        if text not in texts:
            texts.append(text)

    def apply(self) -> str:
        text = self.text
        for (start, end), value in sorted(self.replacements.items(), reverse=True):
            text = text[:start] + value + text[end:]
        lines = text.splitlines(keepends=True)
        for index, texts in self.comments.items():
            if index < len(lines):
                body = lines[index].rstrip("\r\n")
                lines[index] = body + "  # " + "; ".join(texts) + lines[index][len(body):]
        return "".join(lines)


def layers(edits: Edits) -> list[tuple[str, object]]:
    """(dotted prefix, mapping node) of the manifest and of each of its variants."""
    found = [("", edits.root)]
    found += [(f"variants.{name}.", node) for name, node in edits.entries(edits.node("variants"))]
    return found


def _text(node) -> str | None:
    return node.value if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":str") else None


def rename(edits: Edits, old: str, new: str) -> None:
    """`name:` becomes `new`; a fixed container.name is renamed (the copy gets its own container)."""
    name = edits.node("name")
    if name is not None:
        edits.replace(name, new)
    for _, layer in layers(edits):
        fixed = edits.node("container", "name", start=layer)
        value = _text(fixed)
        if value and "${" not in value:
            # the old name as a whole part of the name (envctl-chatglm3-mlu-dev), never inside a word
            whole = re.compile(rf"(?<![A-Za-z0-9]){re.escape(old)}(?![A-Za-z0-9])")
            renamed = whole.sub(new, value) if whole.search(value) else f"envctl-{new}"
            edits.replace(fixed, renamed)
            edits.comment(fixed, f"was {value}, the container of {old}")


def mark_pins(edits: Edits, note: str) -> list[str]:
    """Mark every pin with `note`; returns their dotted paths (with the value pinned)."""
    marked: list[str] = []

    def mark(node, where: str) -> None:
        value = _text(node) if node is not None else None
        if value is None and isinstance(node, yaml.ScalarNode):
            value = node.value
        if value:
            edits.comment(node, note)
            marked.append(f"{where}: {value}")

    for prefix, layer in layers(edits):
        mark(edits.node("image", "id", start=layer), f"{prefix}image.id")
        ref = edits.node("image", "ref", start=layer)
        pulled = edits.node("image", "pull", start=layer)
        if "@" in (_text(ref) or "") or (isinstance(pulled, yaml.ScalarNode) and pulled.value == "true"):
            mark(ref, f"{prefix}image.ref")  # a digest, or the tag a registry image is pulled by
        mark(edits.node("image", "tarball", "sha256", start=layer), f"{prefix}image.tarball.sha256")
        mark(edits.node("device", "driver", start=layer), f"{prefix}device.driver")
        for name, artifact in edits.entries(edits.node("artifacts", start=layer)):
            source = edits.node("source", start=artifact)
            revision = _revision(_text(source))
            if revision is not None:
                mark(source, f"{prefix}artifacts.{name}.source")
                variable = _VARIABLE.match(revision)
                if variable:
                    for vars_prefix, vars_layer in layers(edits):
                        if vars_prefix in ("", prefix):
                            mark(edits.node("vars", variable.group(1), start=vars_layer), f"{vars_prefix}vars.{variable.group(1)}")
            mark(edits.node("sha256", start=artifact), f"{prefix}artifacts.{name}.sha256")
    return list(dict.fromkeys(marked))


def _revision(source: str | None) -> str | None:
    """The `@revision` of an hf://, modelscope:// or git source, or None."""
    if not source or not source.startswith(_PINNED_SCHEMES):
        return None
    last = source.rsplit("/", 1)[-1]
    return last.rsplit("@", 1)[1] if "@" in last else None


def _is_relative_path(value: str | None) -> bool:
    return bool(value) and "${" not in value and "://" not in value and not value.startswith(("/", "file:", "~"))


def relocate_paths(edits: Edits, source_dir: Path, work: Path, copied: bool = True) -> tuple[list[str], list[tuple[str, Path]]]:
    """Rewrite relative paths that leave `source_dir` (every one, when its files were not
    `copied`) as absolute paths; returns (the dotted paths rewritten, [(image.build as written,
    its context directory)] to copy into the bundle)."""
    absolute: list[str] = []
    contexts: list[tuple[str, Path]] = []

    def outside(relative: str) -> Path | None:
        resolved = (source_dir / relative).resolve()
        inside = resolved == source_dir or source_dir in resolved.parents
        return None if inside and copied else resolved

    def rewrite(node, value: str, where: str) -> None:
        edits.replace(node, value)
        absolute.append(where)

    for prefix, layer in layers(edits):
        build_node = edits.node("image", "build", start=layer)
        build = _text(build_node)
        if build and "${" not in build:
            context = build_context(build, source_dir)
            if context is not None and outside(str(context)) is not None and build_context(build, work) != context:
                if not Path(build).is_absolute() and ".." not in Path(build).parts:
                    contexts.append((build, context))  # copied into the bundle, where `build` then points
                else:
                    rewrite(build_node, str(context), f"{prefix}image.build")
        single = [(("image", "tarball", "source"), "image.tarball.source"), (("container", "env_file"), "container.env_file")]
        single += [(("artifacts", name, "source"), f"artifacts.{name}.source")
                   for name, _ in edits.entries(edits.node("artifacts", start=layer))]
        for path, where in single:
            node = edits.node(*path, start=layer)
            value = _text(node)
            if _is_relative_path(value) and outside(value) is not None:
                rewrite(node, str(outside(value)), prefix + where)
        mounts = edits.node("container", "mounts", start=layer)
        for index, node in enumerate(mounts.value if isinstance(mounts, yaml.SequenceNode) else []):
            value = _text(node)
            host, colon, rest = (value or "").partition(":")
            if colon and _is_relative_path(host) and outside(host) is not None:
                rewrite(node, f"{outside(host)}:{rest}", f"{prefix}container.mounts[{index}]")
    return absolute, contexts
