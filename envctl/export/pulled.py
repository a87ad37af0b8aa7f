"""A pulled image (`image: {ref, pull: true}`) in an export: the reference each format runs, how
each node gets it, and what the export's README says about credentials and mirrors.

Kubernetes formats name the canonical reference pinned by the locked digest
(`quay.io/ascend/vllm-ascend:v0.13.0@sha256:...`) with `imagePullPolicy: IfNotPresent`: the
kubelet pulls by digest when the node lacks that digest and pulls nothing when it has it. A
tarball or built image keeps `Never` (envctl.export.k8s_pod): its name (`envctl/...:latest`)
is in no registry, and `IfNotPresent` (or `Always`, the default for `:latest`) would send every
node to a registry that cannot answer instead of saying ErrImageNeverPull.

Mirrors. The export writes the canonical name, not the mirror's, on purpose:
- the digest pins the content whichever host serves it, so the object needs no mirror to be exact;
- a mirror is a property of where the nodes are (the same job runs on a cluster inside and one
  outside China), as envctl keeps it in the user configuration and the inventory, never in the
  manifest;
- a node-level mirror falls back to the registry itself when the mirror cannot serve the image,
  as `envctl up` does; a mirror's name in the pod would give the kubelet no way back.
So the README tells how to give the nodes' container runtime the mirror this machine uses:
containerd's `hosts.toml` (containerd/containerd docs/hosts.md: `server` is the registry,
`[host."URL"]` a mirror tried first, `override_path = true` when the mirror serves the
registry's API under a path, as `m.daocloud.io/quay.io` does; the server is the fallback).
dockerd's `registry-mirrors` covers Docker Hub only and takes no path, so Docker nodes pull the
mirror's name and tag it (what the shell format's scripts do).

The shell format's scripts pull on each server: by digest through the mirror (if one is
configured: this machine's, or ENVCTL_IMAGE_MIRROR on the server), then from the registry
itself, and tag the canonical name the container runs; `docker pull NAME@DIGEST` verifies the
digest itself (content addressing). Slurm's containers are made by `envctl up --hosts`, which
pulls as `up` does (each host's inventory mirror, else this machine's).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Mapping

from envctl.registry_refs import DEFAULT_DOMAIN, ImageName, is_loopback, parse, through_mirror


@dataclass(frozen=True)
class Pulled:
    """How a pulled image is exported. `image`: the canonical name with the pinned digest (None
    when neither the ref nor the lock pins one); `mirror`: the configured mirror's repository
    prefix (m.daocloud.io/quay.io) and `mirror_origin` where it was set (FILE:LINE)."""

    image: ImageName
    mirror: str | None = None
    mirror_origin: str | None = None

    @property
    def reference(self) -> str:
        """What Kubernetes pods name: `registry/repository:tag@sha256:...` when pinned (the
        kubelet and containerd pull by the digest and keep the tag for people), else the tag."""
        return str(self.image)

    @property
    def mirrored(self) -> ImageName | None:
        return through_mirror(self.image, self.mirror) if self.mirror else None


def of_plan(ref: str, digest: str | None, routes: Mapping) -> Pulled:
    """The export's view of the plan's pulled image (`ref`: its tag form; `digest`: the pinned
    manifest digest or None), with the mirror `routes` (registry host → Route, envctl.mirror_routes)
    give its registry."""
    from envctl.registry_plan import mirror_for

    image = parse(ref).with_digest(digest)
    mirror = mirror_for(image, routes)
    return Pulled(image, mirror.prefix if mirror else None, mirror.origin if mirror else None)


def _server(image: ImageName) -> str:
    # Docker Hub's API is registry-1.docker.io (containerd's docs/hosts.md example for docker.io).
    host = "registry-1.docker.io" if image.registry == DEFAULT_DOMAIN else image.registry
    return f"{'http' if is_loopback(host) else 'https'}://{host}"


def hosts_toml(pulled: Pulled) -> str:
    """containerd's /etc/containerd/certs.d/<registry>/hosts.toml sending pulls of the image's
    registry to the mirror first (one line per TOML line, joined by ' / ' for the README)."""
    prefix = pulled.mirror or ""
    for scheme in ("https://", "http://"):
        prefix = prefix.removeprefix(scheme)
    host, _, path = prefix.partition("/")
    scheme = "http" if is_loopback(host) else "https"
    lines = [f'server = "{_server(pulled.image)}"']
    if path.strip("/"):
        lines += [f'[host."{scheme}://{host}/v2/{path.strip("/")}"]', '  capabilities = ["pull", "resolve"]',
                  "  override_path = true"]
    else:
        lines += [f'[host."{scheme}://{host}"]', '  capabilities = ["pull", "resolve"]']
    return "\n".join(lines)


def prerequisites(pulled: Pulled, format_name: str, reference: str, pull_secret: str | None) -> list[str]:
    """README lines (node prerequisites) for a pulled image in `format_name`."""
    image = pulled.image
    out = []
    if image.digest is None:
        out.append(f"the image {image.tagged} is not pinned by digest: `envctl lock {reference}` records the digest "
                   "the tag names now, and exporting again writes it; until then each node runs whatever the tag "
                   "names when it pulls, which can differ between nodes")
    if format_name == "slurm":
        out.append(f"the image {pulled.reference}: `envctl up {reference} --hosts NODES` pulls it on each node as "
                   "`envctl up` pulls (by the pinned digest, through the host's mirror from the inventory, else "
                   "this machine's configuration file, and tagged " + image.tagged + "), with the Docker "
                   "credentials of the machine running envctl")
        return out
    if format_name == "shell":
        via = (f"through the mirror {pulled.mirrored.name} (from {pulled.mirror_origin}; ENVCTL_IMAGE_MIRROR=PREFIX "
               "on a server names another, an empty one none), then " if pulled.mirror else
               "(ENVCTL_IMAGE_MIRROR=PREFIX on a server pulls through a mirror first, e.g. m.daocloud.io/quay.io), "
               "from ")
        out.append(f"the image {pulled.reference}: a server without it pulls it {via}{image.registry}, and tags it "
                   f"{image.tagged}; credentials for a private registry: `docker login` on each server (the "
                   "server's docker CLI configuration)")
        return out
    out.append(f"the image {pulled.reference} pulled by each node's container runtime (imagePullPolicy: "
               "IfNotPresent: a node holding that digest pulls nothing)")
    if pull_secret:
        out.append(f"the Secret {pull_secret} of type kubernetes.io/dockerconfigjson (the pods' imagePullSecrets) "
                   f"with credentials for {image.registry}: `kubectl create secret docker-registry {pull_secret} "
                   f"--docker-server={image.registry} --docker-username=USER --docker-password=\"$PASSWORD\"`, or "
                   f"`kubectl create secret generic {pull_secret} --type=kubernetes.io/dockerconfigjson "
                   "--from-file=.dockerconfigjson=$HOME/.docker/config.json` when that file holds the credentials "
                   "(not a credsStore); the pods name it, so a missing Secret is an event on each pod, and the "
                   "pull goes without credentials")
    else:
        out.append(f"credentials for {image.registry} only if it asks for them (a private repository): create a "
                   "kubernetes.io/dockerconfigjson Secret and export again with `--pull-secret NAME`, which the pods "
                   "name in imagePullSecrets")
    if pulled.mirror:
        out.append(f"this machine pulls {image.registry} through the mirror {pulled.mirror} (set in "
                   f"{pulled.mirror_origin}); the export names the canonical image (the digest pins it whichever "
                   "host serves it, and the same objects run on a cluster that reaches the registry), so give each "
                   f"node's containerd that mirror in /etc/containerd/certs.d/{image.registry}/hosts.toml "
                   "(config_path = \"/etc/containerd/certs.d\" in its config.toml, containerd 1.5 or later; the "
                   "server stays the fallback): `" + " / ".join(line.strip() for line in hosts_toml(pulled).split("\n")) + "`")
    return out


def shell_lines(pulled: Pulled) -> list[str]:
    """POSIX sh lines that make "$image" (the canonical tag form) the pinned image on a server:
    nothing when the server holds it already (its RepoDigests name the digest), else a pull by
    digest through the mirror, then from the registry, and a tag. Exit 5 when no pull works."""
    image = pulled.image
    wanted = image.digest or image.tag or "latest"
    at = "@" if image.digest else ":"
    mirror = shlex.quote(pulled.mirror or "")
    lines = [
        f"image={shlex.quote(image.tagged)}",
        f"envctl_pin={shlex.quote(image.digest or '')}  # the manifest digest envctl lock recorded ('' if not pinned)",
        f"envctl_repo={shlex.quote(image.name)}",
        f"envctl_mirror=${{ENVCTL_IMAGE_MIRROR-{mirror}}}  # a mirror's repository prefix for {image.registry} ('' for none)",
        "envctl_have() {  # the server holds the image under its name (pinned: with that digest)",
        '  if [ -z "$envctl_pin" ]; then docker image inspect "$image" >/dev/null 2>&1; return; fi',
        "  docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' \"$image\" 2>/dev/null "
        '| grep -q "@$envctl_pin\\$"',
        "}",
        "if ! envctl_have; then",
        '  envctl_source=""',
        '  if [ -n "$envctl_mirror" ]; then',
        "    envctl_mirror=${envctl_mirror#https://}; envctl_mirror=${envctl_mirror#http://}",
        "    # The mirror serves the repository under its prefix (envctl.registry_refs.through_mirror).",
        f'    envctl_try="${{envctl_mirror%/}}/${{envctl_repo#{image.registry}/}}{at}{wanted}"',
        '    if docker pull "$envctl_try"; then envctl_source=$envctl_try; else',
        '      echo "envctl: $(hostname): the mirror could not serve $envctl_try; pulling from the registry" >&2',
        "    fi",
        "  fi",
        f'  if [ -z "$envctl_source" ] && docker pull "$envctl_repo{at}{wanted}"; then envctl_source="$envctl_repo{at}{wanted}"; fi',
        '  if [ -z "$envctl_source" ]; then',
        f'    echo "envctl: $(hostname): could not pull $envctl_repo{at}{wanted} (docker said why, above; a private '
        'registry needs docker login)" >&2',
        "    exit 5",
        "  fi",
        "  # A pull by digest is verified by the engine; the container runs the canonical name.",
        '  docker tag "$envctl_source" "$image"',
        "fi",
    ]
    return lines
