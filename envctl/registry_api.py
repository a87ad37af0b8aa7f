"""Asking a registry what a tag names, without pulling: the manifest digest (the pin) and the
compressed size of the layers this platform would download. Used by `envctl lock` and `plan`;
pulls themselves go through the engine (envctl/registry_pull.py).

The requests are those of the OCI distribution spec and Docker's registry API v2
(distribution docs/spec/api.md, "Pulling an Image Manifest"; docs/spec/auth/token.md):

- `GET /v2/<repository>/manifests/<tag|digest>` with an Accept header naming the OCI image
  index and manifest and Docker's manifest list and schema 2 manifest. The digest of the body
  (sha256 of the bytes as served; the registry also sends it as `Docker-Content-Digest`) is the
  manifest digest `docker pull` reports and records in RepoDigests: for a multi-platform image,
  the *index* digest.
- An index names one manifest per platform; the one of the engine's platform
  (envctl/image_platforms.py, attestation manifests skipped) is fetched for its layers' sizes.
- A 401 with `WWW-Authenticate: Bearer realm=...,service=...,scope=...` is answered with a token
  from the realm (the user's credentials as Basic auth when Docker keeps some for the registry),
  `Basic` with the credentials directly.

Credentials are those Docker keeps: docker-py's `auth.load_config` reads `$DOCKER_CONFIG/config.json`
or `~/.docker/config.json` (`auths` entries, and `credsStore` / `credHelpers` through the
`docker-credential-*` programs). An identity token (what `docker login` stores for OAuth
registries such as Azure's) is not exchanged here: the size and lock look-ups then go without
credentials and say so when refused.

TLS is verified. A registry on loopback that offers no TLS is asked over plain HTTP, as dockerd
does for its default insecure range 127.0.0.0/8.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from envctl.errors import EXIT_FETCH_FAILED, EnvctlError
from envctl.image_platforms import Platform, is_attestation, of_descriptor
from envctl.registry_refs import ImageName, is_loopback

INDEX_TYPES = ("application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json")
MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json")
ACCEPT = ", ".join(INDEX_TYPES + MANIFEST_TYPES)
TIMEOUT = 30  # seconds per request: a mirror that does not answer is reported, not waited for
MAX_MANIFEST = 4 << 20  # manifests are small; more is not a manifest


class RegistryError(EnvctlError):
    """A registry could not say what a tag names. `reachable`: False when nothing answered
    (a connection or TLS failure, a timeout), so that a mirror can be told apart from a
    registry that answered no."""

    def __init__(self, message: str, hint: str | None = None, reachable: bool = True):
        if hint is None and not reachable:
            hint = ("a registry mirror this machine reaches can be set in the configuration file's "
                    "mirrors.registries (ENVCTL_CONFIG, else ~/.config/envctl/config.yaml)")
        super().__init__(message, hint, EXIT_FETCH_FAILED)
        self.reachable = reachable


class DigestMismatch(RegistryError):
    """A registry served content whose digest is not the one asked for."""


@dataclass(frozen=True)
class Resolved:
    """What a registry serves for a reference. `digest`: the manifest digest (of the index when
    there is one), the pin; `platform_digest`: the manifest of `platform`; `layer_bytes`: the
    compressed size of its layers plus its config (what a pull downloads at most), None when
    the index has no manifest for the platform."""

    digest: str
    media_type: str
    platform_digest: str | None
    layer_bytes: int | None
    registry: str  # the host asked (a mirror's, when it went through one)


def docker_config_file() -> str:
    """Where Docker's credentials are read, as messages name it: `$DOCKER_CONFIG/config.json`
    when DOCKER_CONFIG is set, else ~/.docker/config.json (the docker CLI's cli/config
    `Dir()`, which docker-py's `find_config_file` follows)."""
    import os

    return os.path.join(os.environ["DOCKER_CONFIG"], "config.json") if os.environ.get("DOCKER_CONFIG") \
        else "~/.docker/config.json"


def docker_config_problem() -> str | None:
    """Why Docker's config.json (docker_config_file()) cannot give credentials, or None (also
    when there is none). docker-py passes over a config.json it cannot parse as if it held no
    credentials, where the docker CLI stops ("loading config file: ..."); envctl says so."""
    import json
    import os

    from docker.utils.config import find_config_file

    path = find_config_file()
    if path is None or os.path.basename(path) != "config.json":
        return None
    try:
        with open(path, encoding="utf-8") as file:
            json.load(file)
    except OSError as exc:
        return f"Docker's {path} cannot be read ({exc.strerror})"
    except ValueError as exc:  # the position only: a JSON error quotes no content
        return f"Docker's {path} is not valid JSON ({exc}), so no credentials are read from it"
    return None


def credentials(registry: str) -> tuple[str, str] | None:
    """(username, password) Docker keeps for `registry`, through docker-py's reading of
    config.json and credential helpers; None when there are none (or only an identity token).
    Raises RegistryError when config.json cannot be read or a credential helper fails."""
    from docker import auth
    from docker.errors import DockerException

    problem = docker_config_problem()
    if problem:
        raise RegistryError(f"{registry} wants credentials and {problem}",
                            hint="fix that file (the docker CLI refuses it too), then `docker login` again")
    try:
        found = auth.load_config().resolve_authconfig(registry)
    except DockerException as exc:  # a credential helper that failed
        raise RegistryError(f"Docker's credential store for {registry} failed: {exc}",
                            hint=f"run `docker login {registry}` again, or fix credsStore in {docker_config_file()}") from None
    # config.json entries come back as username/password, a credential helper's as Username/Password.
    user = (found or {}).get("Username") or (found or {}).get("username")
    secret = (found or {}).get("Password") or (found or {}).get("password")
    return (user, secret) if user and secret else None


class RegistrySession:
    """One registry, asked over HTTPS (plain HTTP on loopback when TLS is not offered), with its
    token answered once per scope."""

    def __init__(self, registry: str):
        import requests

        self.registry = registry
        self.http = requests.Session()
        self.scheme = "https"
        self.tokens: dict[str, str] = {}

    def _url(self, path: str) -> str:
        host = "registry-1.docker.io" if self.registry == "docker.io" else self.registry
        return f"{self.scheme}://{host}{path}"

    def get(self, path: str, scope: str) -> "requests.Response":  # noqa: F821
        import requests

        headers = {"Accept": ACCEPT}
        if scope in self.tokens:
            headers["Authorization"] = self.tokens[scope]
        try:
            answer = self.http.get(self._url(path), headers=headers, timeout=TIMEOUT, stream=True)
        except requests.exceptions.SSLError:
            if self.scheme == "https" and is_loopback(self.registry):
                self.scheme = "http"
                return self.get(path, scope)
            raise RegistryError(f"{self.registry}: TLS certificate not accepted", reachable=False) from None
        except requests.exceptions.ConnectionError as exc:
            if self.scheme == "https" and is_loopback(self.registry):
                self.scheme = "http"
                return self.get(path, scope)
            raise RegistryError(f"{self.registry} cannot be reached ({_reason(exc)})", reachable=False) from None
        except requests.exceptions.Timeout:
            raise RegistryError(f"{self.registry} did not answer within {TIMEOUT} s", reachable=False) from None
        if answer.status_code == 401 and scope not in self.tokens:
            self.tokens[scope] = self._authorize(answer.headers.get("WWW-Authenticate", ""), scope)
            return self.get(path, scope)
        return answer

    def _authorize(self, challenge: str, scope: str) -> str:
        """The Authorization header value that answers the registry's challenge."""
        import requests

        given = credentials(self.registry)
        scheme, _, params = challenge.partition(" ")
        if scheme.lower() == "basic":
            if given is None:
                raise RegistryError(f"{self.registry} wants credentials and Docker keeps none for it",
                                    hint=f"docker login {self.registry}")
            return requests.auth._basic_auth_str(*given)
        if scheme.lower() != "bearer":
            raise RegistryError(f"{self.registry} answered 401 with a challenge envctl does not know: {challenge!r}")
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        if "realm" not in fields:
            raise RegistryError(f"{self.registry} asked for a token without saying where to get it: {challenge!r}")
        query = {"scope": fields.get("scope") or scope}
        if fields.get("service"):
            query["service"] = fields["service"]
        try:
            answer = self.http.get(fields["realm"], params=query, auth=given, timeout=TIMEOUT)
        except requests.exceptions.RequestException as exc:
            raise RegistryError(f"{self.registry}'s token service {fields['realm']} cannot be reached ({_reason(exc)})",
                                reachable=False) from None
        if answer.status_code != 200:
            hint = f"docker login {self.registry}" if answer.status_code in (401, 403) else None
            raise RegistryError(f"{self.registry}'s token service refused a token for {query['scope']} "
                                f"(HTTP {answer.status_code})", hint=hint)
        try:
            body = answer.json()
            token = body.get("token") or body.get("access_token")
        except ValueError:
            token = None
        if not token:
            raise RegistryError(f"{self.registry}'s token service answered without a token")
        return f"Bearer {token}"


def _reason(exc: Exception) -> str:
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "Temporary failure in name resolution",
                   "No route to host", "timed out", "Network is unreachable"):
        if marker in text:
            return marker
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _manifest(session: RegistrySession, image: ImageName, reference: str) -> tuple[str, str, dict]:
    """(digest, media type, document) of one manifest or index, its digest computed from the
    bytes as served (and checked against the digest asked for)."""
    scope = f"repository:{image.repository}:pull"
    answer = session.get(f"/v2/{image.repository}/manifests/{reference}", scope)
    if answer.status_code == 404:
        raise RegistryError(f"{session.registry} has no {image.repository}:{reference}" if not reference.startswith("sha256:")
                            else f"{session.registry} has no {image.repository}@{reference}")
    if answer.status_code in (401, 403):
        raise RegistryError(f"{session.registry} refused {image.repository} (HTTP {answer.status_code})",
                            hint=f"docker login {session.registry}")
    if answer.status_code != 200:
        raise RegistryError(f"{session.registry} answered HTTP {answer.status_code} for {image.repository}:{reference}")
    body = answer.raw.read(MAX_MANIFEST + 1, decode_content=True)
    if len(body) > MAX_MANIFEST:
        raise RegistryError(f"{session.registry} sent more than {MAX_MANIFEST} bytes as the manifest of {image.repository}")
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    if reference.startswith("sha256:") and digest != reference:
        raise DigestMismatch(f"{session.registry} served {digest} when asked for {image.repository}@{reference}: refused")
    try:
        document = json.loads(body)
    except ValueError:
        raise RegistryError(f"{session.registry} sent a manifest of {image.repository} that is not JSON") from None
    media_type = document.get("mediaType") or answer.headers.get("Content-Type", "").split(";")[0]
    return digest, media_type, document


def _size(document: dict) -> int | None:
    try:
        return int(document["config"]["size"]) + sum(int(layer["size"]) for layer in document.get("layers") or ())
    except (KeyError, TypeError, ValueError):
        return None


def resolve(image: ImageName, platform: Platform, session: RegistrySession | None = None) -> Resolved:
    """What the registry of `image` (its registry field: a mirror's when already rewritten)
    serves for its digest, or its tag when it has none. Raises RegistryError."""
    session = session or RegistrySession(image.registry)
    digest, media_type, document = _manifest(session, image, image.pull_reference)
    if media_type in INDEX_TYPES or "manifests" in document:
        for entry in document.get("manifests") or ():
            if is_attestation(entry) or of_descriptor(entry) != platform:
                continue
            platform_digest, _, manifest = _manifest(session, image, entry["digest"])
            return Resolved(digest, media_type, platform_digest, _size(manifest), session.registry)
        return Resolved(digest, media_type, None, None, session.registry)
    return Resolved(digest, media_type, digest, _size(document), session.registry)


def resolve_through(image: ImageName, platform: Platform, mirror: ImageName | None,
                    note=None) -> Resolved:
    """Ask the mirror first when there is one; when it cannot be reached or lacks the image,
    `note(text)` says so and the image's own registry is asked. A mirror that serves a digest
    other than the one pinned is an error, not a reason to ask elsewhere."""
    if mirror is not None:
        try:
            return resolve(mirror, platform)
        except DigestMismatch:
            raise
        except RegistryError as exc:
            if note:
                note(f"mirror {mirror.registry}: {exc.message}; asking {image.registry}")
    return resolve(image, platform)

