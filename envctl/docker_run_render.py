"""The text of a manifest made from a docker run command (docker_run_manifest's draft): YAML
written line by line so that each value can carry the comment saying where it came from, and
read back with yaml.safe_load to check that it holds exactly the data meant."""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

import yaml

from envctl.docker_run import DockerRun, DockerRunError
from envctl.manifest import docker_values
from envctl.manifest.interpolate import looks_secret

SHELLS = {"bash", "sh", "zsh", "ash", "dash"}
_INDICATORS = tuple("-?:,[]{}#&*!|>'\"%@`")


def scalar(value: Any) -> str:
    """A YAML scalar that reads back as `value`: plain where YAML would read the text as it
    is, else double-quoted (JSON's string syntax is YAML's double-quoted style)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    plain = (text and text == text.strip() and not text.startswith(_INDICATORS) and not any(c in text for c in ":{}[],")
             and " #" not in text and "\n" not in text and not text.endswith(":"))
    if plain:
        try:
            plain = yaml.safe_load(text) == text
        except yaml.YAMLError:
            plain = False
    return text if plain else json.dumps(text, ensure_ascii=False)


def flow(values: list) -> str:
    return "[" + ", ".join(scalar(v) for v in values) + "]"


def _comment(text: str) -> str:
    return " ".join(text.split())


def command_lines(run: DockerRun) -> list[str]:
    """The command as read (variables replaced), a line per option; the values of -e variables
    whose names look like credentials shown as ***."""
    words = list(run.words)
    for index, word in enumerate(words):
        for prefix in ("-e", "--env=", "-e="):
            key, equals, _ = word[len(prefix):].partition("=") if word.startswith(prefix) else ("", "", "")
            if equals and looks_secret(key):
                words[index] = f"{prefix}{key}=***"
        if index and words[index - 1] in ("-e", "--env"):
            key, equals, _ = word.partition("=")
            if equals and looks_secret(key):
                words[index] = f"{key}=***"
    image_at = len(words) - len(run.command) - 1
    groups: list[list[str]] = [[]]
    for index, word in enumerate(words):
        if groups[-1] and (index == image_at or (word.startswith("-") and index < image_at)):
            groups.append([])
        groups[-1].append(word)
    lines = [("docker run " if n == 0 else "  ") + shlex.join(group) for n, group in enumerate(groups)]
    return [line + " \\" for line in lines[:-1]] + lines[-1:]


def image_ref(image: str) -> str:
    """The image as a pulled image's ref: name:tag, `latest` where the command named no tag."""
    try:
        docker_values.image_reference(image)
    except ValueError as exc:
        raise DockerRunError(f"image '{image}': {exc}",
                             hint="a quick start's placeholder (<image>:<tag>) must be replaced by the image") from None
    name, at, digest = image.partition("@")
    if ":" not in name.rsplit("/", 1)[-1]:
        if at:
            raise DockerRunError(f"image '{image}' names a digest but no tag; envctl runs a pulled image by its tag",
                                 hint=f"write {name}:TAG@{digest}")
        return f"{name}:latest"
    return image


def entrypoint(run: DockerRun) -> tuple[str, dict, list[str]] | None:
    """(name, fields, comments) of the entrypoint the command runs, or None when the image's
    own command ran."""
    given = [str(v) for v in run.values("entrypoint")]
    words = ([given[-1]] if given and given[-1] else []) + list(run.command)
    if not words:
        return None
    program = words[0].rsplit("/", 1)[-1]
    is_shell = program in SHELLS and all(w in ("-l", "-i", "--login") for w in words[1:])
    name = "shell" if is_shell else (re.sub(r"[^A-Za-z0-9._-]+", "-", program).strip("-._") or "main")
    if not re.match(r"^[A-Za-z0-9]", name):
        name = "main"
    fields: dict = {"description": f"{shlex.join(words)}, as the docker run command ran it"}
    comments = []
    if not given:
        comments.append("docker run ran this after the image's ENTRYPOINT, if it has one; envctl runs it as written")
    attached = run.flag("tty") or run.flag("interactive")
    if is_shell and attached and run.flag("detach"):
        # `docker run -itd IMAGE bash`: a shell held open on a terminal only keeps the container
        # running, for `docker exec -it NAME bash` later. envctl keeps its container running
        # itself; what the user comes back for is the shell, on a terminal.
        fields["interactive"] = True
        comments.append("docker run -itd kept this shell open only to keep the container running for `docker exec`; "
                        "envctl keeps its container running itself: `envctl exec NAME shell` opens the shell")
    elif attached and not run.flag("detach"):
        fields["interactive"] = True
    elif run.flag("detach"):
        comments.append("docker run -d ran it in the background: `envctl exec NAME ENTRY --detach` does")
    fields["run"] = words
    return name, fields, comments


def render(name: str, run: DockerRun, draft) -> str:
    """The manifest's text for `draft` (docker_run_manifest.Draft)."""
    lines: list[str] = []
    data: dict = {}
    out = lines.append
    out(f"# {name}: made by `envctl new {name} --from-docker-run` from this command:")
    lines += ["#   " + line.replace("\r", "\\r").replace("\n", "\\n") for line in command_lines(run)]
    if run.substituted:
        shown = ", ".join(f"{key}={_comment(value)}" for key, value in sorted(run.substituted.items()))
        out(f"# Values of its variables, from the export lines or the environment: {shown}")
    for remark in draft.remarks:
        out(f"# {_comment(remark)}")
    out(f"# Review it, then: envctl validate {name}; envctl lock {name} (pins the image's digest); envctl plan {name}")
    ref = image_ref(run.image)
    description = f"{ref}, as a docker run command started it"
    out(f"name: {scalar(name)}")
    out(f"description: {scalar(description)}")
    data.update(name=name, description=description)

    out("device:")
    device: dict = {"kind": draft.kind}
    out(f"  kind: {draft.kind}")
    if draft.card_count is not None:
        device["cards"] = draft.card_count
        out(f"  cards: {draft.card_count}  # --gpus: a count of free GPUs")
    elif draft.cards:
        device["cards"] = draft.cards
        out(f"  cards: {flow(draft.cards)}  # the cards the command passed (host indices)")
    elif draft.card_comment:
        out(f"  # cards: {_comment(draft.card_comment)}")
    data["device"] = device
    if draft.left_to_envctl:
        out(f"  # Left out of this manifest: envctl adds these itself for {draft.kind} (envctl/devices/{draft.kind}.py),")
        out("  # only where the host has them:")
        lines += [f"  #   {_comment(item)}" for item in draft.left_to_envctl]

    out("image:")
    out("  # A registry image, pulled by `envctl up`; `envctl lock` pins it by its digest (ref: NAME:TAG@sha256:...).")
    if ref != run.image:
        out("  # The command named no tag: Docker took latest.")
    out(f"  ref: {scalar(ref)}")
    out("  pull: true")
    data["image"] = {"ref": ref, "pull": True}

    container = _container(draft)
    if container:
        out("container:")
        data["container"] = container
        for key, value in container.items():
            _emit(lines, key, value, draft)

    found = entrypoint(run)
    if found and found[2] and found[1]["run"][0].startswith("-"):
        draft.notes.append(f"the command's arguments ({shlex.join(run.command)}) went to the image's ENTRYPOINT, which "
                           f"envctl does not read from the image; write an entrypoint running that program with them")
        found = None
    if found:
        entry_name, fields, comments = found
        if draft.served:
            fields["ports"] = draft.served
        out("entrypoints:")
        out(f"  {entry_name}:")
        lines += [f"    # {_comment(c)}" for c in comments]
        for key in ("description", "interactive", "ports", "run"):
            if key in fields:
                value = fields[key]
                out(f"    {key}: {flow(value) if isinstance(value, list) else scalar(value)}")
        data["entrypoints"] = {entry_name: fields}
    else:
        out("# entrypoints: the command gave none (the image's own command ran); add the ones you run")

    if draft.notes:
        out("notes:")
        for note in draft.notes:
            out(f"  - {scalar(note)}")
        data["notes"] = list(draft.notes)
    text = "\n".join(lines) + "\n"
    if yaml.safe_load(text) != data:
        raise AssertionError("the manifest's text does not read back as its data")  # a bug in this module
    return text


def _container(draft) -> dict:
    container: dict = {}
    for key in ("name", "runtime", "shm_size", "ipc", "network", "pid", "privileged", "user", "workdir"):
        value = draft.container.get(key)
        if key == "runtime" and value is None:
            value = draft.runtime
        if value is not None:
            container[key] = value
    if draft.env:
        container["env"] = dict(draft.env)
    if draft.pass_env:
        container["pass_env"] = list(draft.pass_env)
    if draft.container.get("env_file"):
        container["env_file"] = draft.container["env_file"]
    if draft.mounts:
        container["mounts"] = list(draft.mounts)
    if draft.ports and container.get("network") not in ("host",) and not str(container.get("network", "")).startswith("container:"):
        container["ports"] = list(draft.ports)
    elif draft.ports:
        draft.notes.append(f"docker run -p {', '.join(draft.ports)}: Docker discards published ports under "
                           f"--network {container['network']}; the servers answer on the host's own ports")
    if draft.ulimits:
        container["ulimits"] = dict(draft.ulimits)
    if draft.cap_add:
        container["cap_add"] = list(draft.cap_add)
    return container


def _emit(lines: list[str], key: str, value: Any, draft) -> None:
    comments = {
        "privileged": "the command ran privileged (every host device); envctl passes the cards' nodes either way",
        "pass_env": "passed from your environment when setup steps and entrypoints run; never written here",
        "env_file": "values for pass_env, read when setup steps and entrypoints run",
    }
    tail = f"  # {comments[key]}" if key in comments else ""
    if isinstance(value, dict):
        lines.append(f"  {key}:{tail}")
        lines += [f"    {scalar(k)}: {scalar(v)}" for k, v in value.items()]
    elif isinstance(value, list) and key in ("mounts", "ports"):
        lines.append(f"  {key}:{tail}")
        lines += [f"    - {scalar(v)}" for v in value]
    elif isinstance(value, list):
        lines.append(f"  {key}: {flow(value)}{tail}")
    else:
        lines.append(f"  {key}: {scalar(value)}{tail}")
