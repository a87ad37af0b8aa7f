"""`envctl new` through the command line, as a user runs it in a directory of their own:
copies of every shipped manifest, of manifests with profiles only found through
ENVCTL_MANIFEST_PATH, files beside them and paths outside them; a docker run command made into
a manifest. Every result is checked with `envctl validate` (the real loader, every variant)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from envctl.manifest import discovery

SHIPPED = sorted(p.parent.name for p in discovery.shipped_root().glob("*/manifest.yaml"))


def envctl(cwd: Path, *args: str, env: dict | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "ENVCTL_MANIFEST_PATH"}
    environ.update(XDG_CONFIG_HOME=str(cwd / ".config"), **(env or {}))
    return subprocess.run([sys.executable, "-m", "envctl", *args], cwd=cwd, env=environ, input=stdin,
                          capture_output=True, text=True, timeout=120)


def test_every_shipped_manifest_copies_and_validates(tmp_path):
    assert len(SHIPPED) >= 6
    for source in SHIPPED:
        made = envctl(tmp_path, "new", f"my-{source}", "--from", source)
        assert made.returncode == 0, made.stderr
        copy = tmp_path / "manifests" / f"my-{source}" / "manifest.yaml"
        assert made.stdout.strip() == str(copy)
        checked = envctl(tmp_path, "validate", f"my-{source}")
        assert checked.returncode == 0, checked.stderr
        original = (discovery.shipped_root() / source / "manifest.yaml").read_text(encoding="utf-8")
        text = copy.read_text(encoding="utf-8")
        assert yaml.safe_load(text)["name"] == f"my-{source}"
        # every comment of the source is still there, in its place
        for line in original.splitlines():
            if line.lstrip().startswith("#"):
                assert line in text.splitlines(), line
        for extra in (discovery.shipped_root() / source).iterdir():
            assert (copy.parent / extra.name).exists(), extra.name


def test_pins_are_marked_and_listed(tmp_path):
    made = envctl(tmp_path, "new", "my-chat", "--from", "chatglm2-npu-fastchat")
    assert made.returncode == 0, made.stderr
    text = (tmp_path / "manifests/my-chat/manifest.yaml").read_text(encoding="utf-8")
    marked = [line for line in text.splitlines() if line.endswith("# review: pinned for chatglm2-npu-fastchat")]
    assert [line.split()[1] for line in marked] == [
        "git+https://github.com/lm-sys/FastChat@v0.2.36", "hf://THUDM/chatglm2-6b@main",
        "git+https://github.com/THUDM/ChatGLM2-6B@main",
        "hf://datasets/FreedomIntelligence/evol-instruct-chinese@main"]
    assert "#   artifacts.fastchat.source: git+https://github.com/lm-sys/FastChat@v0.2.36" in text
    assert "4 pin(s) marked" in made.stderr

    mlu = envctl(tmp_path, "new", "my-mlu", "--from", "chinese-alpaca2-mlu")
    assert mlu.returncode == 0, mlu.stderr
    mlu_text = (tmp_path / "manifests/my-mlu/manifest.yaml").read_text(encoding="utf-8")
    driver = next(line for line in mlu_text.splitlines() if line.strip().startswith("driver:"))
    assert driver.endswith("# review: pinned for chinese-alpaca2-mlu")


def test_vars_holding_a_revision_and_variants_are_marked(tmp_path):
    made = envctl(tmp_path, "new", "tiny", "--from", "chatglm-tiny-cpu")
    assert made.returncode == 0, made.stderr
    text = (tmp_path / "manifests/tiny/manifest.yaml").read_text(encoding="utf-8")
    source = yaml.safe_load((discovery.shipped_root() / "chatglm-tiny-cpu/manifest.yaml").read_text(encoding="utf-8"))
    for var in ("model_revision", "dataset_revision"):
        line = next(line for line in text.splitlines() if line.strip().startswith(f"{var}:"))
        assert line.endswith("# review: pinned for chatglm-tiny-cpu"), line
        assert str(source["vars"][var]) in line


def test_build_context_outside_the_bundle_is_brought_along(tmp_path):
    made = envctl(tmp_path, "new", "tiny", "--from", "chatglm-tiny-cpu")
    assert made.returncode == 0, made.stderr
    build = yaml.safe_load((tmp_path / "manifests/tiny/manifest.yaml").read_text(encoding="utf-8"))["image"]["build"]
    assert (tmp_path / "manifests/tiny" / build / "Dockerfile").is_file()
    assert "build contexts copied: images/cpu-reference" in made.stderr


def test_refuses_to_overwrite_without_force(tmp_path):
    assert envctl(tmp_path, "new", "mine", "--from", "chatglm3-mlu").returncode == 0
    (tmp_path / "manifests/mine/notes.txt").write_text("mine")
    again = envctl(tmp_path, "new", "mine", "--from", "chatglm2-npu")
    assert again.returncode == 2 and "exists; not overwritten" in again.stderr and "--force" in again.stderr
    assert yaml.safe_load((tmp_path / "manifests/mine/manifest.yaml").read_text())["description"].find("MLU") >= 0
    forced = envctl(tmp_path, "new", "mine", "--from", "chatglm2-npu", "--force")
    assert forced.returncode == 0, forced.stderr
    assert not (tmp_path / "manifests/mine/notes.txt").exists()
    assert yaml.safe_load((tmp_path / "manifests/mine/manifest.yaml").read_text())["device"]["kind"] == "npu"
    assert [p.name for p in (tmp_path / "manifests").iterdir()] == ["mine"]  # no temporary directory left


def test_dir_option_and_a_root_envctl_does_not_search(tmp_path):
    made = envctl(tmp_path, "new", "lab", "--from", "chatglm2-npu", "--dir", "lab-manifests")
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "lab-manifests/lab/manifest.yaml").is_file()
    assert "is not a root envctl searches" in made.stderr
    assert envctl(tmp_path, "validate", "lab-manifests/lab").returncode == 0
    user_root = tmp_path / ".config/envctl/manifests"
    made = envctl(tmp_path, "new", "lab2", "--from", "chatglm2-npu", "--dir", str(user_root))
    assert made.returncode == 0 and "not a root" not in made.stderr
    assert envctl(tmp_path, "validate", "lab2").returncode == 0


def _lab_root(tmp_path: Path) -> Path:
    """A manifest root of a lab's own: a profile extending another, a script beside the
    manifest, a mount and an artifact outside its directory, a fixed container name."""
    root = tmp_path / "lab"
    (root / "profiles").mkdir(parents=True)
    (root / "profiles/lab910.yaml").write_text("description: the lab's 910B hosts\nextends: ascend910\n"
                                               "container:\n  env: {LAB: \"1\"}\n")
    (root / "shared-data").mkdir()
    bundle = root / "serve"
    bundle.mkdir()
    (bundle / "start.sh").write_text("echo start\n")
    (bundle / "patches").mkdir()
    (bundle / "patches/fix.patch").write_text("--- a\n+++ b\n")
    (bundle / "manifest.lock").write_text("version: 1\nsources: {}\n")
    (bundle / "__pycache__").mkdir()
    (bundle / "__pycache__/x.cpython-311.pyc").write_bytes(b"\0")
    (bundle / "manifest.yaml").write_text(
        "# the lab's server\n"
        "name: serve\n"
        "description: a server   # described\n"
        "extends: lab910\n"
        "device: {kind: npu, cards: 1, driver: '>=23.0.rc3'}   # validated there\n"
        "image:\n"
        "  ref: quay.io/ascend/vllm-ascend:v0.7.3@sha256:" + "b" * 64 + "\n"
        "  pull: true\n"
        "container:\n"
        "  name: lab-serve-container\n"
        "  mounts:\n"
        "    - ./patches:/patches:ro\n"
        "    - \"../shared-data:/data\"\n"
        "artifacts:\n"
        "  scripts:\n"
        "    source: .\n"
        "    include: [start.sh]\n"
        "  data:\n"
        "    source: ../shared-data\n"
        "    sha256: " + "c" * 64 + "\n"
        "variants:\n"
        "  big:\n"
        "    device: {driver: '>=24.1.0'}\n"
        "entrypoints:\n"
        "  serve: {run: bash /opt/envctl/artifacts/scripts/start.sh}\n")
    return root


def test_a_lab_manifest_found_through_envctl_manifest_path(tmp_path):
    root = _lab_root(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    made = envctl(work, "new", "serve2", "--from", "serve", env={"ENVCTL_MANIFEST_PATH": str(root)})
    assert made.returncode == 0, made.stderr
    bundle = work / "manifests/serve2"
    # the profile lives in a root only ENVCTL_MANIFEST_PATH names: copied, so that the copy
    # validates in a shell without it; the shipped profile it extends stays found by name
    assert sorted(p.name for p in (bundle / "profiles").iterdir()) == ["lab910.yaml"]
    assert (bundle / "patches/fix.patch").is_file() and (bundle / "start.sh").is_file()
    assert (bundle / "manifest.lock").read_text() == "version: 1\nsources: {}\n"
    assert not (bundle / "__pycache__").exists()
    checked = envctl(work, "validate", "serve2")
    assert checked.returncode == 0, checked.stderr
    assert "[big]" in checked.stdout
    text = (bundle / "manifest.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    assert data["container"]["mounts"] == ["./patches:/patches:ro", f"{root / 'shared-data'}:/data"]
    assert data["artifacts"]["data"]["source"] == str(root / "shared-data")
    assert data["artifacts"]["scripts"]["source"] == "."
    assert data["container"]["name"] == "lab-serve2-container"  # its own container, not serve's
    assert "# the lab's server" in text and "# described" in text
    review = "# review: pinned for serve"
    for fragment in ("ref: quay.io/ascend/vllm-ascend:v0.7.3@sha256:", "device: {kind: npu", "sha256: ccc",
                     "device: {driver: '>=24.1.0'}"):
        line = next(line for line in text.splitlines() if fragment in line and not line.startswith("#"))
        assert review in line, line
    assert "# validated there  # review: pinned for serve" in text
    assert "# manifest.lock was copied too" in text and "`envctl lock serve2`" in text


def test_a_fixed_container_name_is_renamed(tmp_path):
    made = envctl(tmp_path, "new", "mine", "--from", "chatglm3-mlu")
    assert made.returncode == 0, made.stderr
    source = yaml.safe_load((discovery.shipped_root() / "chatglm3-mlu/manifest.yaml").read_text(encoding="utf-8"))
    copy = yaml.safe_load((tmp_path / "manifests/mine/manifest.yaml").read_text(encoding="utf-8"))
    fixed = (source.get("container") or {}).get("name")
    if fixed:
        assert copy["container"]["name"] == fixed.replace("chatglm3-mlu", "mine")
    else:
        assert "name" not in (copy.get("container") or {})
    root = _lab_root(tmp_path)
    manifest = root / "serve/manifest.yaml"
    manifest.write_text(manifest.read_text().replace("lab-serve-container", "lab-server-box"))
    made = envctl(tmp_path, "new", "lab-copy", "--from", str(root / "serve"), env={"ENVCTL_MANIFEST_PATH": str(root)})
    assert made.returncode == 0, made.stderr
    text = (tmp_path / "manifests/lab-copy/manifest.yaml").read_text(encoding="utf-8")
    assert yaml.safe_load(text)["container"]["name"] == "envctl-lab-copy"  # 'serve' inside 'server' is not the name
    assert "was lab-server-box, the container of serve" in text


def test_a_profile_shadowed_at_the_destination_is_refused(tmp_path):
    root = _lab_root(tmp_path)
    (tmp_path / "manifests/profiles").mkdir(parents=True)
    (tmp_path / "manifests/profiles/lab910.yaml").write_text("description: another lab's\n")
    made = envctl(tmp_path, "new", "serve2", "--from", "serve", env={"ENVCTL_MANIFEST_PATH": str(root)})
    assert made.returncode == 2 and "would take the place of profile 'lab910'" in made.stderr
    assert not (tmp_path / "manifests/serve2").exists()


@pytest.mark.parametrize("args, message", [
    (["new", "x"], "give --from MANIFEST or --from-docker-run"),
    (["new", "x", "--from", "chatglm3-mlu", "--from-docker-run", "docker run img"], "one of them"),
    (["new", "Bad_Name", "--from", "chatglm3-mlu"], "cannot be a manifest name"),
    (["new", "x", "--from", "chatglm3-mlu:7b"], "a variant is part of its manifest"),
    (["new", "x", "--from", "chatglm3-ml"], "no manifest named 'chatglm3-ml' (did you mean 'chatglm3-mlu'?)"),
])
def test_usage_errors(tmp_path, args, message):
    made = envctl(tmp_path, *args)
    assert made.returncode in (2, 4) and message in made.stderr, made.stderr
    assert "Traceback" not in made.stderr and not (tmp_path / "manifests").exists() or \
        not any((tmp_path / "manifests").iterdir())


def test_an_invalid_source_writes_nothing(tmp_path):
    root = _lab_root(tmp_path)
    manifest = root / "serve/manifest.yaml"
    manifest.write_text(manifest.read_text().replace("cards: 1", "cards: -1"))
    made = envctl(tmp_path, "new", "serve2", "--from", str(root / "serve"), env={"ENVCTL_MANIFEST_PATH": str(root)})
    assert made.returncode == 3 and "manifests/serve2/manifest.yaml:" in made.stderr and "nothing was written" in made.stderr
    assert list((tmp_path / "manifests").iterdir()) == []


VLLM_ASCEND = """export IMAGE=quay.io/ascend/vllm-ascend:v0.13.0
docker run --rm \\
--name vllm-ascend \\
--shm-size=1g \\
--device $DEVICE \\
--device /dev/davinci_manager \\
--device /dev/devmm_svm \\
--device /dev/hisi_hdc \\
-v /usr/local/dcmi:/usr/local/dcmi \\
-v /usr/local/bin/npu-smi:/usr/local/bin/npu-smi \\
-v /usr/local/Ascend/driver/lib64/:/usr/local/Ascend/driver/lib64/ \\
-v /usr/local/Ascend/driver/version.info:/usr/local/Ascend/driver/version.info \\
-v /etc/ascend_install.info:/etc/ascend_install.info \\
-v /root/.cache:/root/.cache \\
-e HF_TOKEN=hf_do_not_write_me \\
--cap-drop NET_RAW \\
-p 8000:8000 \\
-it $IMAGE bash
"""


def test_from_docker_run_on_the_command_line_and_stdin(tmp_path):
    made = envctl(tmp_path, "new", "vllm", "--from-docker-run", VLLM_ASCEND, env={"DEVICE": "/dev/davinci2"})
    assert made.returncode == 0, made.stderr
    text = (tmp_path / "manifests/vllm/manifest.yaml").read_text(encoding="utf-8")
    assert "hf_do_not_write_me" not in text and "hf_do_not_write_me" not in made.stderr + made.stdout
    assert "warning: docker run --cap-drop NET_RAW: not in the manifest" in made.stderr
    assert "warning: docker run -e HF_TOKEN=***" in made.stderr
    checked = envctl(tmp_path, "validate", "vllm")
    assert checked.returncode == 0, checked.stderr
    data = yaml.safe_load(text)
    assert data["device"] == {"kind": "npu", "cards": [2]} and data["image"]["pull"] is True
    piped = envctl(tmp_path, "new", "vllm2", "--from-docker-run", "-", stdin=VLLM_ASCEND, env={"DEVICE": "/dev/davinci0"})
    assert piped.returncode == 0, piped.stderr
    assert yaml.safe_load((tmp_path / "manifests/vllm2/manifest.yaml").read_text())["device"]["cards"] == [0]
    again = envctl(tmp_path, "new", "vllm", "--from-docker-run", VLLM_ASCEND, env={"DEVICE": "/dev/davinci2"})
    assert again.returncode == 2 and "exists; not overwritten" in again.stderr


def test_from_docker_run_refusals_are_usage_errors(tmp_path):
    unknown = envctl(tmp_path, "new", "x", "--from-docker-run", "docker run --gpu all img")
    assert unknown.returncode == 2 and "error: unknown flag: --gpu" in unknown.stderr
    unset = envctl(tmp_path, "new", "x", "--from-docker-run", "docker run $ENVCTL_TEST_UNSET_IMAGE")
    assert unset.returncode == 2 and "$ENVCTL_TEST_UNSET_IMAGE is not set" in unset.stderr
    assert "Traceback" not in unknown.stderr + unset.stderr
    assert not (tmp_path / "manifests/x").exists()


def test_the_quick_start_manifest_plans_each_node_and_driver_file_once_on_a_simulated_910b_host(tmp_path):
    """What the command passed by hand and envctl adds itself for npu is in the plan once."""
    import json

    import hostsim

    root = hostsim.npu_host(tmp_path / "host", cards=8, model="910B")
    made = envctl(tmp_path, "new", "vllm", "--from-docker-run", VLLM_ASCEND, env={"DEVICE": "/dev/davinci2"})
    assert made.returncode == 0, made.stderr
    planned = envctl(tmp_path, "plan", "vllm", "--json", env={"ENVCTL_HOST_ROOT": str(root)})
    assert planned.returncode in (0, 5), planned.stderr
    container = json.loads(planned.stdout)["container"]
    assert [d["container_path"] for d in container["devices"]] == [
        "/dev/davinci2", "/dev/davinci_manager", "/dev/devmm_svm", "/dev/hisi_hdc"]
    targets = [m["target"] for m in container["mounts"]]
    for path in ("/usr/local/dcmi", "/usr/local/bin/npu-smi", "/usr/local/Ascend/driver/lib64",
                 "/usr/local/Ascend/driver/version.info", "/etc/ascend_install.info", "/root/.cache"):
        assert targets.count(path) == 1, path
    assert container["env"]["ASCEND_RT_VISIBLE_DEVICES"] == "0"
    assert "HF_TOKEN" not in container["env"]
    assert container["ports"] == ["8000:8000"] and container["shm_size"] in ("1g", 1 << 30)


def test_a_manifest_file_of_another_name_is_taken_alone(tmp_path):
    """--from path/x.yaml: the directory may hold anything; only the file (and its lock) is copied."""
    elsewhere = tmp_path / "downloads"
    (elsewhere / "data").mkdir(parents=True)
    (elsewhere / "unrelated.bin").write_bytes(b"x" * 1024)
    (elsewhere / "manifest.lock").write_text("version: 1\nsources: {}\n")
    (elsewhere / "vllm-serve.yaml").write_text(
        "name: vllm-serve\ndescription: d\ndevice: {kind: cpu}\n"
        "image: {ref: 'quay.io/ascend/vllm-ascend:v0.13.0', pull: true}\n"
        "container: {mounts: ['./data:/data']}\n")
    made = envctl(tmp_path, "new", "serve", "--from", str(elsewhere / "vllm-serve.yaml"))
    assert made.returncode == 0, made.stderr
    bundle = tmp_path / "manifests/serve"
    assert sorted(p.name for p in bundle.iterdir()) == ["manifest.lock", "manifest.yaml"]
    text = (bundle / "manifest.yaml").read_text()
    assert yaml.safe_load(text)["container"]["mounts"] == [f"{elsewhere / 'data'}:/data"]
    ref_line = next(line for line in text.splitlines() if line.startswith("image:"))
    assert ref_line.endswith("# review: pinned for vllm-serve")  # the tag a registry image is pulled by
    assert envctl(tmp_path, "validate", "serve").returncode == 0


def test_a_value_envctl_refuses_writes_nothing(tmp_path):
    made = envctl(tmp_path, "new", "x", "--from-docker-run", "docker run -e my-var img:1")
    assert made.returncode == 3, made.stderr
    assert "manifests/x/manifest.yaml:" in made.stderr and "pass_env" in made.stderr
    assert "the docker run command holds these values" in made.stderr and "Traceback" not in made.stderr
    assert list((tmp_path / "manifests").iterdir()) == []


def test_crlf_line_ends_stay(tmp_path):
    source = discovery.shipped_root() / "chatglm3-mlu/manifest.yaml"
    root = tmp_path / "win"
    (root / "crlf").mkdir(parents=True)
    (root / "crlf/manifest.yaml").write_bytes(b"\xef\xbb\xbf" + source.read_bytes().replace(b"\n", b"\r\n"))
    made = envctl(tmp_path, "new", "lf-not", "--from", str(root / "crlf"))
    assert made.returncode == 0, made.stderr
    data = (tmp_path / "manifests/lf-not/manifest.yaml").read_bytes()
    assert data.count(b"\n") == data.count(b"\r\n") and b"# review: pinned for chatglm3-mlu\r\n" in data
    assert envctl(tmp_path, "validate", "lf-not").returncode == 0


def test_a_copy_leaves_behind_env_files_and_version_control_and_keeps_links(tmp_path):
    """A bundle copied to be shared: the source's env files (one user's passed secrets, its
    container.env_file of the manifest or a variant, and any .env) and its .git stay behind and
    are said; a link to a host file stays a link instead of becoming a copy of that file."""
    source = tmp_path / "lab" / "serve"
    (source / ".git").mkdir(parents=True)
    (source / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (source / ".env").write_text("HF_TOKEN=hf_abcdefghijklmnop\n")
    (source / "secrets").mkdir()
    (source / "secrets" / "big.env").write_text("API_KEY=sk-abcdefghijklmnop\n")
    (source / "run.sh").write_text("echo hi\n")
    (source / "hosts").symlink_to("/etc/hosts")
    (source / "manifest.yaml").write_text(
        "name: serve\ndescription: d\ndevice: {kind: cpu}\nimage: {ref: 'e.com/i:1', pull: true}\n"
        "container: {pass_env: [HF_TOKEN, API_KEY], env_file: .env}\n"
        "variants:\n  big: {container: {env_file: secrets/big.env}}\n")
    made = envctl(tmp_path, "new", "mine", "--from", str(source))
    assert made.returncode == 0, made.stderr
    copy = tmp_path / "manifests" / "mine"
    assert sorted(p.name for p in copy.iterdir()) == ["hosts", "manifest.yaml", "run.sh", "secrets"]
    assert list((copy / "secrets").iterdir()) == []
    assert (copy / "hosts").is_symlink() and os.readlink(copy / "hosts") == "/etc/hosts"
    assert "not copied (one user's env files: write your own): .env, secrets/big.env" in made.stderr
    text = (copy / "manifest.yaml").read_text()
    assert "# not copied (one user's env files: write your own): .env, secrets/big.env" in text
    assert f"by `envctl new mine --from {source}`" in text  # the command as given
    assert envctl(tmp_path, "validate", "mine:big").returncode == 0


def test_from_docker_run_reads_pwd_as_the_directory_it_runs_in(tmp_path):
    """`-v $(pwd):/workspace` and `$PWD` are the directory envctl new runs in, as the shell that
    ran the quick start had them, even when an inherited PWD is stale."""
    made = envctl(tmp_path, "new", "here", "--from-docker-run",
                  "docker run -v $(pwd):/workspace -v $PWD/data:/data img:1", env={"PWD": "/stale"})
    assert made.returncode == 0, made.stderr
    written = yaml.safe_load((tmp_path / "manifests/here/manifest.yaml").read_text())
    assert written["container"]["mounts"] == [f"{tmp_path}:/workspace", f"{tmp_path}/data:/data"]


@pytest.mark.parametrize("how", ["--from", "--from-docker-run"])
def test_a_manifest_root_that_cannot_be_written_names_it_and_dir(tmp_path, how):
    """Exit 5 naming the root and --dir (not the cache and workspace settings); nothing written."""
    (tmp_path / "afile").write_text("")
    source = "chatglm3-mlu" if how == "--from" else "docker run img:1"
    for root, said in ((tmp_path / "afile" / "sub", f"manifest root {tmp_path}/afile/sub has a file where a directory "
                                                    f"is needed"),
                       (Path("/proc"), "manifest root /proc takes no new directories")):
        made = envctl(tmp_path, "new", "mine", how, source, "--dir", str(root))
        assert made.returncode == 5, made.stderr
        assert f"error: {said}" in made.stderr and "give --dir a manifest root you can write" in made.stderr
        assert "ENVCTL_CACHE" not in made.stderr and "Traceback" not in made.stderr
    assert not list(tmp_path.rglob("mine")) and not list(tmp_path.rglob(".mine.new-*"))


def test_a_name_another_root_holds_is_said(tmp_path):
    """The earliest root wins a name: a new ./manifests/NAME hides the shipped one (a note); a
    new one in the user's root is hidden by ./manifests/NAME (a warning: `envctl up NAME`
    would not run it)."""
    made = envctl(tmp_path, "new", "chatglm3-mlu", "--from-docker-run", "docker run img:1")
    assert made.returncode == 0, made.stderr
    shipped = discovery.shipped_root()
    assert f"note: chatglm3-mlu now hides the manifest of that name in {shipped} (shipped)" in made.stderr
    user_root = tmp_path / ".config" / "envctl" / "manifests"
    hidden = envctl(tmp_path, "new", "chatglm3-mlu", "--from-docker-run", "docker run img:1", "--dir", str(user_root))
    assert hidden.returncode == 0, hidden.stderr
    assert (f"warning: {tmp_path}/manifests/chatglm3-mlu/manifest.yaml (./manifests) is found first for the name "
            f"chatglm3-mlu: commands given chatglm3-mlu run it, not this one") in hidden.stderr
    alone = envctl(tmp_path, "new", "only-mine", "--from-docker-run", "docker run img:1")
    assert "hides" not in alone.stderr and "found first" not in alone.stderr
