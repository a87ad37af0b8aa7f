"""The upstream world of the shipped accelerator manifests, on loopback: what their artifacts
name (git repositories on github.com and gitee.com, Hugging Face repos, files on vendor sites),
with stand-in content at the upstream paths (tests/fixtures/upstream/git/<host>/<path>, and the
small generated files below), served the way envctl fetches them for real:

- hf:// sources are left as the manifests write them: the loopback Hub answers through
  HF_ENDPOINT, under the same repo ids and revisions (a short sha is a prefix of its commit).
- git sources at a tag or branch are left as written: git's own `url.<base>.insteadOf`
  (GIT_CONFIG_* variables, which envctl's git inherits) sends github.com and gitee.com to local
  repositories. A commit pin cannot be honoured by a repository made here (no one can make a
  commit with a given sha), so those pins are replaced by the local commit: `rewrites()`.
- http(s) files are served by a loopback HTTP server; their URLs are replaced: `rewrites()`.
- Files that manifests take from variables (image tarballs, unpublished wheels) are given as a
  local path, an http:// or an ftp:// URL, so each of those fetch paths runs.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from servers.ftp import FTPServer
from servers.hf_endpoint import HFEndpoint
from servers.http_files import FileServer
from support import REPO

FIXTURES = REPO / "tests" / "fixtures" / "upstream"
# Fixed dates make the local commits the same on every run.
_GIT_ENV = {"GIT_AUTHOR_NAME": "stand-in", "GIT_AUTHOR_EMAIL": "standin@example.com", "GIT_COMMITTER_NAME": "stand-in",
            "GIT_COMMITTER_EMAIL": "standin@example.com", "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
            "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z"}
# Tags and branches the manifests ask for, besides the branches main and master.
_TAGS = {"github.com/huggingface/transformers": ["v4.30.2"], "github.com/lm-sys/FastChat": ["v0.2.36"]}
_BRANCHES = {"gitee.com/mindspore/mindformers.git": ["r1.1.0"]}


def _padded(prefix: str) -> str:
    """A 40-hex commit that starts with `prefix` (the manifests pin short Hub revisions)."""
    return (prefix + hashlib.sha1(prefix.encode()).hexdigest())[:40]


def wheel(name: str, version: str) -> bytes:
    """A minimal wheel: a module and its .dist-info metadata."""
    buffer = io.BytesIO()
    dist = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{name}/__init__.py", f"# envctl-standin: {name} {version}\n")
        archive.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        archive.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        archive.writestr(f"{dist}/RECORD", "")
    return buffer.getvalue()


def tar_gz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as zipped, tarfile.open(fileobj=zipped, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _json(value) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=1).encode()


_ADGEN = {
    "AdvertiseGen/train.json": b'{"content": "\xe7\xb1\xbb\xe5\x9e\x8b#\xe4\xb8\x8a\xe8\xa1\xa3", "summary": "stand-in"}\n',
    "AdvertiseGen/dev.json": b'{"content": "\xe7\xb1\xbb\xe5\x9e\x8b#\xe8\xa3\x99", "summary": "stand-in"}\n',
}
_FORMAT_TOOL_ALPACA = (FIXTURES / "git/github.com/THUDM/ChatGLM3/finetune_demo/scripts/format_tool_alpaca.py").read_bytes()

# The https files the manifests name, as stand-ins.
HTTP_FILES = {
    "https://sdk.cambricon.com/static/Basis/MLU370_X86_ubuntu18.04/deepspeed_mlu-0.9.0-py3-none-any.whl":
        wheel("deepspeed_mlu", "0.9.0"),
    "https://sdk.cambricon.com/static/Basis/MLU370_X86_ubuntu18.04/cndsp-0.8.0-py3-none-any.whl": wheel("cndsp", "0.8.0"),
    "https://cloud.tsinghua.edu.cn/f/b3f119a008264b1cabd1/?dl=1": tar_gz(_ADGEN),
    "https://ascend-repo-modelzoo.obs.cn-east-2.myhuaweicloud.com/XFormer_for_mindspore/glm3/glm3_6b.ckpt": b"stand-in glm3 ckpt",
    "https://ascend-repo-modelzoo.obs.cn-east-2.myhuaweicloud.com/XFormer_for_mindspore/glm3/tokenizer.model": b"stand-in tokenizer",
    "https://ascend-repo-modelzoo.obs.cn-east-2.myhuaweicloud.com/XFormer_for_mindspore/glm3/tool_alpaca.jsonl":
        b'{"tools": ["weather"], "conversations": []}\n',
    "https://raw.githubusercontent.com/THUDM/ChatGLM3/7cd5bc78bd6232d02764b60b33874bb2d63a0df0/finetune_chatmodel_demo/scripts/format_tool_alpaca.py":
        _FORMAT_TOOL_ALPACA,
}


def _model(name: str, **extra: bytes) -> dict[str, bytes]:
    return {"config.json": _json({"model_type": name, "standin": True}), "tokenizer_config.json": b"{}",
            "tokenizer.model": b"stand-in tokenizer", **extra}


_CHATGLM2_MODELING = b"""# stand-in: THUDM/chatglm2-6b modeling_chatglm.py, the chat() lines the FastChat tutorial patches
class ChatGLMForConditionalGeneration:
    def chat(self, tokenizer, query, history=None):
        inputs = tokenizer([query], return_tensors="pt")
        inputs = inputs.to(self.device)
        return inputs
"""

# Hub repos: (repo type, id) -> (commit, files). `main` points at the commit too.
HF_REPOS = {
    ("model", "THUDM/chatglm3-6b"): (_padded("e46a14881eae"), _model(
        "chatglm", **{"modeling_chatglm.py": b"# stand-in: THUDM/chatglm3-6b's original modeling_chatglm.py\n",
                      "model-00001-of-00007.safetensors": b"\0" * 64})),
    ("model", "THUDM/chatglm2-6b"): ("0ade0d38ac00258ae09450696315c2ff0b1faf12", _model(
        "chatglm", **{"modeling_chatglm.py": _CHATGLM2_MODELING, "pytorch_model-00001-of-00007.bin": b"\0" * 64})),
    **{("model", f"hfl/{name}-{size}"): (_padded(hashlib.sha1(f"{name}{size}".encode()).hexdigest()[:12]), _model("llama"))
       for name in ("chinese-alpaca-2", "chinese-llama-2") for size in ("7b", "13b")},
    ("dataset", "FreedomIntelligence/evol-instruct-chinese"): (_padded("5117772"), {
        "evol-instruct-chinese.json": _json([{"id": f"s{i}", "conversations": [{"from": "human", "value": f"问题 {i}"},
                                                                              {"from": "gpt", "value": f"回答 {i}"}]}
                                             for i in range(600)])}),
}


def _git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True, env={**os.environ, **_GIT_ENV})
    return done.stdout.strip()


def make_git_repos(root: Path) -> dict[str, str]:
    """Every fixture repository under root/<host>/<path>, committed once; returns path -> commit."""
    commits = {}
    base = FIXTURES / "git"
    for marker in sorted(base.glob("*/*/*")):
        key = str(marker.relative_to(base))
        target = root / key
        shutil.copytree(marker, target)
        _git("init", "-q", "-b", "main", cwd=target)
        _git("add", "-A", cwd=target)
        _git("commit", "-qm", "stand-in content", cwd=target)
        for branch in ["master", *_BRANCHES.get(key, [])]:
            _git("branch", branch, cwd=target)
        for tag in _TAGS.get(key, []):
            _git("tag", tag, cwd=target)
        commits[key] = _git("rev-parse", "HEAD", cwd=target)
    return commits


@dataclass
class World:
    """The servers and repositories, started; `environ()` points envctl at them."""

    root: Path
    hf: HFEndpoint = field(default_factory=HFEndpoint)
    files: FileServer = field(default_factory=FileServer)
    ftp: FTPServer | None = None
    commits: dict[str, str] = field(default_factory=dict)

    def start(self) -> World:
        self.commits = make_git_repos(self.root / "git")
        for (kind, repo_id), (sha, files) in HF_REPOS.items():
            self.hf.add_repo(repo_id, repo_type=kind, files=files, revision_sha=sha)
        for url, data in HTTP_FILES.items():
            self.files.put(self._served_path(url), data)
        (self.root / "ftp").mkdir(exist_ok=True)
        self.ftp = FTPServer(root=self.root / "ftp")
        for server in (self.hf, self.files, self.ftp):
            server.start()
        return self

    def stop(self) -> None:
        for server in (self.ftp, self.files, self.hf):
            if server is not None:
                server.stop()

    @staticmethod
    def _served_path(url: str) -> str:
        parts = urlsplit(url)
        return f"/{parts.hostname}{parts.path}"

    def http_url(self, url: str) -> str:
        """The loopback URL serving what `url` names (its query kept, as a client sends it)."""
        query = urlsplit(url).query
        return self.files.url_for(self._served_path(url)) + (f"?{query}" if query else "")

    def ftp_url(self, name: str) -> str:
        return f"ftp://user:secret@127.0.0.1:{self.ftp.port}/{name}"

    def git_source(self, source: str) -> str:
        """`git+https://host/path@pin` with the pin replaced by the local repository's commit."""
        location, _, _ = source.rpartition("@")
        parts = urlsplit(location.removeprefix("git+"))
        return f"{location}@{self.commits[parts.hostname + parts.path]}"

    def environ(self) -> dict[str, str]:
        hosts = ("github.com", "gitee.com")
        env = {"HF_ENDPOINT": self.hf.url, "GIT_CONFIG_COUNT": str(len(hosts))}
        for i, host in enumerate(hosts):
            env[f"GIT_CONFIG_KEY_{i}"] = f"url.file://{self.root / 'git' / host}/.insteadOf"
            env[f"GIT_CONFIG_VALUE_{i}"] = f"https://{host}/"
        return env
