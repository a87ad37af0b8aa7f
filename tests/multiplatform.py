"""Multi-platform OCI layouts made from a single-platform one, as buildx and Docker 28 write them.

`docker buildx build --platform linux/amd64,linux/arm64 --output type=oci` (and Docker 28's
`docker save` of such an image, on the containerd store) writes index.json naming an image index,
which names one manifest per platform and, with provenance on, an attestation manifest of
platform unknown/unknown per image (buildx docs, "Attestation storage"). Here each extra platform
gets its own config (the same image config with another `architecture`/`variant`, so its digest
differs) and a manifest naming that config and the same layers: every blob is valid and present,
so a real engine loads the layout. With `manifest_json`, manifest.json names the first
platform's config, as Docker 28.5.2's save does for the platform it runs (checked).
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


def _put(blobs: dict, data: bytes) -> dict:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blobs["blobs/sha256/" + digest[7:]] = data
    return {"digest": digest, "size": len(data)}


def members_of(tarball: bytes) -> dict[str, bytes]:
    """The regular files of a tarball, by member name."""
    found = {}
    with tarfile.open(fileobj=io.BytesIO(tarball)) as archive:
        for member in archive:
            if member.isfile():
                found[member.name.removeprefix("./")] = archive.extractfile(member).read()
    return found


def multi_platform(single: bytes, platforms=(("amd64", ""), ("arm64", "v8")), nest: int = 1, attest: bool = False,
                   manifest_json: bool = False, tags: list[str] | None = None) -> tuple[bytes, dict]:
    """A layout of the image in `single` (an OCI layout with one manifest in index.json, e.g.
    Docker 28's `docker save`) for each (architecture, variant) of `platforms`, under `nest`
    image indexes. Returns the tarball and {"index": the index.json entry's digest (the
    containerd store's image ID), "configs": {"linux/arch[/variant]": config digest},
    "manifests": {platform: manifest digest}}."""
    blobs = members_of(single)
    index = json.loads(blobs.pop("index.json"))
    blobs.pop("manifest.json", None)
    entry = index["manifests"][0]
    manifest = json.loads(blobs["blobs/sha256/" + entry["digest"][7:]])
    config = json.loads(blobs["blobs/sha256/" + manifest["config"]["digest"][7:]])
    children, configs, manifests = [], {}, {}
    for architecture, variant in platforms:
        one = {k: v for k, v in config.items() if k != "variant"}
        one["architecture"] = architecture
        if variant:
            one["variant"] = variant
        described = _put(blobs, json.dumps(one).encode())
        body = dict(manifest, mediaType=OCI_MANIFEST, config={"mediaType": OCI_CONFIG, **described})
        written = _put(blobs, json.dumps(body).encode())
        platform = {"architecture": architecture, "os": "linux", **({"variant": variant} if variant else {})}
        name = "/".join(p for p in ("linux", architecture, variant) if p)
        configs[name], manifests[name] = described["digest"], written["digest"]
        children.append({"mediaType": OCI_MANIFEST, **written, "platform": platform})
        if attest:  # buildx's provenance: a manifest of platform unknown/unknown naming its image
            statement = _put(blobs, b'{"_type": "https://in-toto.io/Statement/v0.1"}')
            attestation = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"mediaType": OCI_CONFIG, **_put(blobs, b"{}")},
                           "layers": [{"mediaType": "application/vnd.in-toto+json", **statement}]}
            children.append({"mediaType": OCI_MANIFEST, **_put(blobs, json.dumps(attestation).encode()),
                             "platform": {"architecture": "unknown", "os": "unknown"},
                             "annotations": {"vnd.docker.reference.digest": written["digest"],
                                             "vnd.docker.reference.type": "attestation-manifest"}})
    inner = children
    for _ in range(nest):
        written = _put(blobs, json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": inner}).encode())
        inner = [{"mediaType": OCI_INDEX, **written}]
    top = dict(inner[0], annotations=entry.get("annotations") or {})
    blobs["index.json"] = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [top]}).encode()
    if manifest_json:
        first = next(iter(configs.values()))
        blobs["manifest.json"] = json.dumps([{"Config": "blobs/sha256/" + first[7:], "RepoTags": tags or [],
                                              "Layers": [layer["digest"].replace("sha256:", "blobs/sha256/") for layer in manifest["layers"]]}]).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in blobs.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue(), {"index": top["digest"], "configs": configs, "manifests": manifests}
