"""A token service for a loopback docker-registry, as the public registries run one (Docker
Hub's auth.docker.io, quay.io's /v2/auth): the registry answers 401 with
`WWW-Authenticate: Bearer realm=...,service=...,scope=...`, and a client gets a token from the
realm, with Basic credentials when it has some (distribution docs/spec/auth/token.md).

Tokens are JWTs signed RS256 by a self-signed certificate, named in the token's `x5c` header;
the registry trusts that certificate (`auth.token.rootcertbundle`) and checks the issuer, the
audience (the service) and the `access` claim (distribution docs/spec/auth/jwt.md).

- `TokenService(users)`: the realm at `url + "/token"`; `settings(certificate_path)` is the
  registry's `auth.token` configuration; `issued` lists (user or None, scope) of every token
  given. Anonymous requests get pull access only when `anonymous_pull`.
"""

from __future__ import annotations

import base64
import datetime
import json
import time
import uuid
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from ._background import BackgroundHTTPServer

SERVICE = "envctl-test-registry"
ISSUER = "envctl-test-token-issuer"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenService(BackgroundHTTPServer):
    def __init__(self, users: dict[str, str], anonymous_pull: bool = False):
        super().__init__()
        self.users = users
        self.anonymous_pull = anonymous_pull
        self.issued: list[tuple[str | None, str]] = []
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "envctl test token signer")])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                            .not_valid_before(now - datetime.timedelta(days=1))
                            .not_valid_after(now + datetime.timedelta(days=1))
                            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                            .sign(self.key, hashes.SHA256()))

    def settings(self, directory: Path) -> dict:
        """The registry's `auth` configuration trusting this service."""
        bundle = directory / "token-signer.pem"
        bundle.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))
        return {"token": {"realm": f"{self.url}/token", "service": SERVICE, "issuer": ISSUER,
                          "rootcertbundle": str(bundle)}}

    def _user(self, handler: BaseHTTPRequestHandler) -> tuple[bool, str | None]:
        header = handler.headers.get("Authorization") or ""
        if not header.startswith("Basic "):
            return True, None
        try:
            user, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False, None
        return self.users.get(user) == secret, user

    def dispatch(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        """GET with Basic credentials (Docker's classic store, envctl), or POST of an OAuth2
        password grant (containerd's resolver tries that first: `grant_type=password`)."""
        split = urlsplit(handler.path)
        query = parse_qs(split.query)
        valid, user = self._user(handler)
        if method == "POST":
            length = int(handler.headers.get("Content-Length") or 0)
            form = parse_qs(handler.rfile.read(length).decode())
            query = {**query, **form}
            given = form.get("username", [None])[0]
            valid, user = (self.users.get(given) == form.get("password", [None])[0], given) if given else (True, None)
        if split.path != "/token" or not valid or query.get("service", [""])[0] != SERVICE \
                or (user is None and not self.anonymous_pull):
            handler.send_response(401)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        access = []
        for scope in query.get("scope", []):
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            allowed = [a for a in actions.split(",") if user is not None or a == "pull"]
            access.append({"type": kind, "name": name, "actions": allowed})
            self.issued.append((user, scope))
        token = self._token(user, access)
        body = json.dumps({"token": token, "access_token": token, "expires_in": 300}).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _token(self, user: str | None, access: list) -> str:
        now = int(time.time())
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
        claims = {"iss": ISSUER, "sub": user or "", "aud": SERVICE, "exp": now + 300, "nbf": now - 10, "iat": now,
                  "jti": uuid.uuid4().hex, "access": access}
        signed = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = self.key.sign(signed.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signed}.{_b64url(signature)}"
