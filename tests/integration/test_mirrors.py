"""The user config file's mirrors driving `envctl fetch`, `lock`, `plan` and `config` against real
loopback servers: a Hugging Face stand-in (tests/servers/hf_endpoint.py), a ModelScope stand-in
and git's own smart HTTP server. The canonical hosts (huggingface.co, github.com) are never
reached: HF_ENDPOINT and MODELSCOPE_ENDPOINT are not set, and github.com is rewritten."""

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from servers.git_http import GitHTTPServer
from servers.hf_endpoint import HFEndpoint
from servers.modelscope_endpoint import ModelScopeEndpoint

GIT = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
MODEL_FILES = {"config.json": b'{"hidden_size": 64}\n', "model.safetensors": os.urandom(300_000)}
MS_FILES = {"config.json": b'{"hidden_size": 32}\n', "model.safetensors": os.urandom(200_000)}  # other blobs: no sharing
CANONICAL_GIT = "https://github.com/envctl-mirror-test/"


def envctl(tmp_path: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m envctl ARGS` with this test's own home, cache and config; no mirror variable
    from the caller's environment."""
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("ENVCTL_", "HF_", "MODELSCOPE_", "PIP_", "XDG_"))}
    environ.update({"ENVCTL_CACHE": str(tmp_path / "cache"), "ENVCTL_WORKSPACE": str(tmp_path / "ws"),
                    "HOME": str(tmp_path / "home"), "ENVCTL_CONFIG": str(tmp_path / "config.yaml"), **(env or {})})
    return subprocess.run([sys.executable, "-m", "envctl", *args], capture_output=True, text=True, env=environ, timeout=300)


def write_manifest(tmp_path: Path, artifacts: str) -> Path:
    path = tmp_path / "m" / "manifest.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text("name: mirrored\ndescription: artifacts through mirrors\ndevice: {kind: cpu}\nimage: {ref: x}\n"
                    "artifacts:\n" + textwrap.indent(textwrap.dedent(artifacts), "  "))
    return path


def placed(out: str) -> dict[str, Path]:
    return {line.split("\t")[0]: Path(line.split("\t")[1]) for line in out.splitlines() if "\t" in line}


@pytest.fixture
def git_server(tmp_path):
    """`tiny.git` (tag v1, then a second commit on main) served by git http-backend on loopback."""
    work = tmp_path / "work"
    subprocess.run(GIT + ["init", "-q", "-b", "main", str(work)], check=True)
    (work / "train.py").write_text("print('v1')\n")
    subprocess.run(GIT + ["-C", str(work), "add", "-A"], check=True)
    subprocess.run(GIT + ["-C", str(work), "commit", "-qm", "one"], check=True)
    subprocess.run(GIT + ["-C", str(work), "tag", "v1"], check=True)
    first = subprocess.run(["git", "-C", str(work), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    (work / "train.py").write_text("print('v2')\n")
    subprocess.run(GIT + ["-C", str(work), "commit", "-qam", "two"], check=True)
    root = tmp_path / "srv"
    root.mkdir()
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(root / "tiny.git")], check=True)
    with GitHTTPServer(root) as server:
        server.first = first
        yield server


def test_the_config_file_sends_fetch_lock_and_plan_through_hub_mirrors_and_a_git_rewrite(tmp_path, git_server):
    with HFEndpoint() as hf, ModelScopeEndpoint() as ms:
        hf.add_repo("Qwen/Qwen2.5-0.5B", files=MODEL_FILES, lfs=["model.safetensors"])
        ms.add_repo("qwen/Qwen2.5-0.5B", {"v1.0": MS_FILES})
        (tmp_path / "config.yaml").write_text(textwrap.dedent(f"""\
            # the lab's mirrors
            mirrors:
              huggingface: {hf.url}
              modelscope: {ms.url}/
              git:
                "https://github.com/": "http://127.0.0.1:1/nothing-here/"
                "{CANONICAL_GIT}": "{git_server.url}/"
            """))
        manifest = write_manifest(tmp_path, f"""\
            hub: {{source: 'hf://Qwen/Qwen2.5-0.5B@main'}}
            ms: {{source: 'modelscope://qwen/Qwen2.5-0.5B@v1.0'}}
            code: {{source: 'git+{CANONICAL_GIT}tiny.git@v1'}}
            """)
        config = str(tmp_path / "config.yaml")

        plan = envctl(tmp_path, "plan", str(manifest), "--json")
        assert plan.stdout, plan.stderr
        shown = {a["name"]: (a.get("mirror"), a.get("mirror_from")) for a in json.loads(plan.stdout)["artifacts"]}
        assert shown == {"hub": (hf.url, f"{config}:3"), "ms": (ms.url, f"{config}:4"),
                         "code": (f"{git_server.url}/tiny.git", f"mirrors.git '{CANONICAL_GIT}' in {config}:7")}
        text = envctl(tmp_path, "plan", str(manifest)).stdout
        assert f"mirror {hf.url}  (from {config}:3)" in text
        assert f"mirror {git_server.url}/tiny.git  (from mirrors.git '{CANONICAL_GIT}' in {config}:7)" in text

        fetched = envctl(tmp_path, "fetch", str(manifest))
        assert fetched.returncode == 0, fetched.stderr
        paths = placed(fetched.stdout)
        for name, files in (("hub", MODEL_FILES), ("ms", MS_FILES)):
            assert {p: (paths[name] / p).read_bytes() for p in files} == files
        assert (paths["code"] / "train.py").read_text() == "print('v1')\n"
        assert any(h.path.endswith("/model.safetensors") for h in hf.hits), [h.path for h in hf.hits]
        assert any("model.safetensors" in s.query for s in ms.seen), ms.seen

        locked = envctl(tmp_path, "lock", str(manifest))
        assert locked.returncode == 0, locked.stderr
        lock_text = (manifest.parent / "manifest.lock").read_text()
        # The lock names sources as written and what they resolved to; no mirror makes it differ.
        for mirror in (hf.url, ms.url, git_server.url, "127.0.0.1"):
            assert mirror not in lock_text
        assert git_server.first in lock_text and f"git+{CANONICAL_GIT}tiny.git@v1" in lock_text
        assert hashlib.sha256(MODEL_FILES["model.safetensors"]).hexdigest() in lock_text
        # The locked sources (a commit where a branch was named) are placed through the mirrors too.
        assert envctl(tmp_path, "fetch", str(manifest)).returncode == 0

    # The servers are gone and the config file too: the cache (keyed by the canonical sources)
    # serves every artifact, the git one included, and the locked commit is what is placed.
    (tmp_path / "config.yaml").unlink()
    again = envctl(tmp_path, "fetch", str(manifest), env={"ENVCTL_CONFIG": ""})
    assert again.returncode == 0, again.stderr
    assert again.stderr.count(": cached") == 3, again.stderr


def test_environment_variables_win_over_the_file(tmp_path):
    with HFEndpoint() as right, HFEndpoint() as wrong:
        right.add_repo("Qwen/Qwen2.5-0.5B", files=MODEL_FILES, lfs=["model.safetensors"])
        (tmp_path / "config.yaml").write_text(f"mirrors:\n  huggingface: {wrong.url}\n")
        manifest = write_manifest(tmp_path, "hub: {source: 'hf://Qwen/Qwen2.5-0.5B@main'}\n")
        plan = envctl(tmp_path, "plan", str(manifest), "--json", env={"HF_ENDPOINT": right.url})
        [artifact] = json.loads(plan.stdout)["artifacts"]
        assert (artifact["mirror"], artifact["mirror_from"]) == (right.url, "environment variable HF_ENDPOINT")
        fetched = envctl(tmp_path, "fetch", str(manifest), env={"HF_ENDPOINT": right.url})
        assert fetched.returncode == 0, fetched.stderr
        assert wrong.requests == 0 and right.requests > 0
        shown = envctl(tmp_path, "config", "show", env={"HF_ENDPOINT": right.url})
        assert f"huggingface  {right.url}  (from environment variable HF_ENDPOINT)" in shown.stdout


def test_config_takes_its_options_with_or_without_show(tmp_path):
    """The README writes `envctl config` with `--json` and `--host NAME`: the group takes them
    as `show` does, and an option before a subcommand is a usage error (exit 2), not ignored."""
    (tmp_path / "config.yaml").write_text("mirrors:\n  registries: {quay.io: m.daocloud.io/quay.io}\n")
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("hosts:\n  lab1:\n    ssh: lab1.example\n    mirrors: {registries: {quay.io: lab.mirror.cn/quay}}\n")
    bare, shown = envctl(tmp_path, "config", "--json"), envctl(tmp_path, "config", "show", "--json")
    assert bare.returncode == 0 and bare.stdout == shown.stdout, bare.stderr
    assert json.loads(bare.stdout)["routes"]["this machine"]["registries"]["quay.io"]["url"] == "m.daocloud.io/quay.io"
    hosted = envctl(tmp_path, "config", "--host", "lab1", "--inventory", str(inventory), "--json")
    assert hosted.returncode == 0, hosted.stderr
    assert json.loads(hosted.stdout)["routes"]["lab1"]["registries"]["quay.io"]["url"] == "lab.mirror.cn/quay"
    before = envctl(tmp_path, "config", "--json", "show")
    assert before.returncode == 2 and "after `show`" in before.stderr, before.stderr


def test_a_mirror_that_fails_is_named_with_where_it_was_set(tmp_path, git_server):
    (tmp_path / "config.yaml").write_text(f'mirrors:\n  git: {{"{CANONICAL_GIT}": "{git_server.url}/gone/"}}\n')
    manifest = write_manifest(tmp_path, f"code: {{source: 'git+{CANONICAL_GIT}tiny.git@v1'}}\n")
    fetched = envctl(tmp_path, "fetch", str(manifest))
    assert fetched.returncode != 0
    assert f"through the git mirror {git_server.url}/gone/tiny.git: mirrors.git '{CANONICAL_GIT}' from " \
           f"{tmp_path / 'config.yaml'}:2" in fetched.stderr, fetched.stderr
    assert "Traceback" not in fetched.stderr


def test_a_git_mirror_must_still_have_the_locked_commit(tmp_path, git_server):
    """A mirror whose tag points elsewhere cannot change a locked artifact: the lock's commit is
    fetched by its sha and checked to be there."""
    (tmp_path / "config.yaml").write_text(f'mirrors:\n  git: {{"{CANONICAL_GIT}": "{git_server.url}/"}}\n')
    manifest = write_manifest(tmp_path, f"code: {{source: 'git+{CANONICAL_GIT}tiny.git@v1'}}\n")
    assert envctl(tmp_path, "lock", str(manifest)).returncode == 0
    lock = manifest.parent / "manifest.lock"
    assert git_server.first in lock.read_text(), lock.read_text()
    lock.write_text(lock.read_text().replace(git_server.first, "deadbeef" * 5))
    fetched = envctl(tmp_path, "fetch", str(manifest), env={"ENVCTL_CACHE": str(tmp_path / "fresh-cache")})
    assert fetched.returncode != 0 and f"commit {'deadbeef' * 5} is not in the repository" in fetched.stderr, fetched.stderr


BAD = """\
mirrors:
  huggingface: hf-mirror.com
  git: ["https://github.com/"]
  pypi: https://pypi.tuna.tsinghua.edu.cn/simple
"""


@pytest.mark.parametrize("command", [["fetch", "MANIFEST"], ["lock", "MANIFEST"], ["plan", "MANIFEST"],
                                     ["up", "MANIFEST", "--dry-run"], ["config"], ["config", "show", "--json"]])
def test_a_bad_config_file_is_every_problem_at_its_line_at_every_command(tmp_path, command):
    (tmp_path / "config.yaml").write_text(BAD)
    manifest = write_manifest(tmp_path, "hub: {source: 'hf://Qwen/Qwen2.5-0.5B@main'}\n")
    done = envctl(tmp_path, *[str(manifest) if part == "MANIFEST" else part for part in command])
    config = tmp_path / "config.yaml"
    assert done.returncode == 3, (done.returncode, done.stderr)
    assert f"error: {config}:2:16: mirrors.huggingface: expected an http(s):// URL, got 'hf-mirror.com'" in done.stderr
    assert f"error: {config}:3:8: mirrors.git: expected a mapping" in done.stderr
    assert f"error: {config}:4:3: mirrors.pypi: unknown mirror 'pypi'" in done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr


def test_doctor_reports_a_bad_config_file_as_a_failed_check(tmp_path):
    (tmp_path / "config.yaml").write_text(BAD)
    done = envctl(tmp_path, "doctor", "--json")
    checks = {c["name"]: c for c in json.loads(done.stdout)} if done.stdout.startswith("[") else \
        {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    assert checks["config file"]["status"] == "fail"
    assert f"{tmp_path / 'config.yaml'}:4:3: mirrors.pypi" in checks["config file"]["detail"]
    assert done.returncode == 5


def test_hf_endpoint_in_container_env_is_said_not_to_be_envctls_mirror(tmp_path):
    """The issue's instance: HF_ENDPOINT in a profile's container.env did not change where
    `envctl fetch` downloaded from. The plan now says so, and where envctl downloads from."""
    path = write_manifest(tmp_path, "hub: {source: 'hf://Qwen/Qwen2.5-0.5B@main'}\n")
    path.write_text(path.read_text().replace("image: {ref: x}\n", "image: {ref: x}\ncontainer:\n  env: {HF_ENDPOINT: 'https://hf-mirror.com'}\n"))
    (tmp_path / "config.yaml").write_text("mirrors: {}\n")
    notes = json.loads(envctl(tmp_path, "plan", str(path), "--json").stdout)["notes"]
    assert "container.env HF_ENDPOINT is for the programs in the container; envctl downloads huggingface artifacts " \
           "from https://huggingface.co (set mirrors.huggingface in the user config file" in " ".join(notes)
    (tmp_path / "config.yaml").write_text("mirrors: {huggingface: 'https://hf-mirror.com/'}\n")
    notes = json.loads(envctl(tmp_path, "plan", str(path), "--json").stdout)["notes"]
    assert not [n for n in notes if "container.env HF_ENDPOINT" in n]
    # Through another mirror than the container's: said, naming the one envctl uses.
    notes = json.loads(envctl(tmp_path, "plan", str(path), "--json", env={"HF_ENDPOINT": "http://10.1.1.1"}).stdout)["notes"]
    assert [n for n in notes if "downloads huggingface artifacts from http://10.1.1.1" in n]
    # A private mirror's credentials are not in the note (a password, a token as the user name).
    for mirror, shown in (("https://lab:pw-Secret-9@hf.lab", "https://lab:***@hf.lab"),
                          ("https://hf_Secret9Secret9Secret9@hf.lab", "https://***@hf.lab")):
        (tmp_path / "config.yaml").write_text(f"mirrors: {{huggingface: '{mirror}'}}\n")
        planned = envctl(tmp_path, "plan", str(path), "--json")
        notes = json.loads(planned.stdout)["notes"]
        assert [n for n in notes if f"downloads huggingface artifacts from {shown} " in n], notes
        assert "Secret9" not in planned.stdout + planned.stderr


@pytest.mark.parametrize("ref", ["v1", "main", "short", "full"])  # each reaches git another way (gitsrc.resolve)
def test_every_kind_of_ref_is_fetched_through_the_rewrite(tmp_path, git_server, ref):
    ref = {"short": git_server.first[:10], "full": git_server.first}.get(ref, ref)
    (tmp_path / "config.yaml").write_text(f'mirrors:\n  git: {{"{CANONICAL_GIT}": "{git_server.url}/"}}\n')
    manifest = write_manifest(tmp_path, f"code: {{source: 'git+{CANONICAL_GIT}tiny.git@{ref}'}}\n")
    fetched = envctl(tmp_path, "fetch", str(manifest))
    assert fetched.returncode == 0, fetched.stderr
    assert (placed(fetched.stdout)["code"] / "train.py").read_text() == ("print('v2')\n" if ref == "main" else "print('v1')\n")
    # The bare repository in the cache is named by the canonical URL, not the mirror's.
    assert (tmp_path / "cache" / "git" / "github.com" / "envctl-mirror-test" / "tiny.git" / "HEAD").is_file()


def test_a_token_is_not_sent_to_a_mirror_on_another_server(tmp_path, git_server):
    token = "glpat-MirrorTestEXAMPLE"
    (tmp_path / "config.yaml").write_text(f'mirrors:\n  git: {{"https://git.lab.example/": "{git_server.url}/"}}\n')
    manifest = write_manifest(tmp_path, f"code: {{source: 'git+https://alice:{token}@git.lab.example/tiny.git@v1'}}\n")
    fetched = envctl(tmp_path, "fetch", str(manifest))
    assert fetched.returncode == 0, fetched.stderr
    assert git_server.authorizations and set(git_server.authorizations) == {None}
    assert token not in fetched.stdout + fetched.stderr


def test_a_token_still_reaches_a_rewrite_on_the_same_server(tmp_path):
    """A rewrite of the path on one server (a moved group) keeps the URL's credential."""
    work = tmp_path / "work"
    subprocess.run(GIT + ["init", "-q", "-b", "main", str(work)], check=True)
    (work / "a.txt").write_text("private\n")
    subprocess.run(GIT + ["-C", str(work), "add", "-A"], check=True)
    subprocess.run(GIT + ["-C", str(work), "commit", "-qm", "one"], check=True)
    root = tmp_path / "srv"
    (root / "new-group").mkdir(parents=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(root / "new-group" / "tiny.git")], check=True)
    with GitHTTPServer(root, require_auth=("alice", "s3cret")) as server:
        (tmp_path / "config.yaml").write_text(f'mirrors:\n  git: {{"{server.url}/old-group/": "{server.url}/new-group/"}}\n')
        url = server.url.replace("http://", "http://alice:s3cret@")
        manifest = write_manifest(tmp_path, f"code: {{source: 'git+{url}/old-group/tiny.git@main'}}\n")
        fetched = envctl(tmp_path, "fetch", str(manifest))
        assert fetched.returncode == 0, fetched.stderr
        assert (placed(fetched.stdout)["code"] / "a.txt").read_text() == "private\n"
        assert server.refused == 0 and "s3cret" not in fetched.stdout + fetched.stderr


def test_a_mirrors_password_is_shown_nowhere(tmp_path):
    """A private mirror behind basic auth (http://user:password@host): plan, config, fetch's error."""
    (tmp_path / "config.yaml").write_text("mirrors:\n  huggingface: http://lab:s3cretpw@127.0.0.1:9\n"
                                          "  modelscope: http://lab:s3cretpw@127.0.0.1:9\n")
    manifest = write_manifest(tmp_path, "hub: {source: 'hf://Qwen/Qwen2.5-0.5B@main'}\n"
                                        "ms: {source: 'modelscope://qwen/Qwen2.5-0.5B@v1.0'}\n")
    runs = [envctl(tmp_path, "plan", str(manifest)), envctl(tmp_path, "plan", str(manifest), "--json"),
            envctl(tmp_path, "config"), envctl(tmp_path, "config", "show", "--json"), envctl(tmp_path, "fetch", str(manifest))]
    assert "mirror http://lab:***@127.0.0.1:9" in runs[0].stdout
    assert runs[4].returncode != 0 and "(endpoint http://lab:***@127.0.0.1:9)" in runs[4].stderr, runs[4].stderr
    for run in runs:
        assert "s3cretpw" not in run.stdout + run.stderr
