"""The `shell` export on servers that lack the image: the path a server without envctl takes.
`envctl build` bakes the manifest's setup into an image, `envctl save` writes it as a tarball
(plain and .tar.gz), `envctl export --format shell --image <baked>` writes the scripts; each
tarball and script is copied to a lab host whose engine has never held that image, and
`ENVCTL_IMAGE_TARBALL=FILE sh node-R.sh` loads it there and runs the node (rank 0 on lab3 from
the plain tarball, rank 1 on lab2 from the gzipped one: one contract, the setup's mark inside).

Neighbours on lab1, which lacks the image too, each refused with exit 5 and what went wrong,
before `docker run` would look for the image in a registry and with no container started: a
tarball that cannot be read, one cut short (half of the file, as an interrupted copy leaves
it), and a whole tarball that holds another image. `docker load` reads gzip, bzip2 and xz
tarballs itself (docker load --help: "Load an image from a tar archive or STDIN"; compressed
archives since Docker 1.8, moby/moby#14582)."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import tarfile

import pytest

from standin_images import BASE, ensure_base

RANKS = {0: "lab3", 1: "lab2"}  # neither engine has held the baked image
BODY = """\
device: {kind: cpu}
image: {ref: %s}
container: {network: host}
setup:
  - name: mark the image
    run: echo "baked in $(date +%%Y)" > /opt/envctl-setup-mark
entrypoints:
  show:
    run: echo one node
    nodes:
      launcher: none
      run: |
        echo "rank=$ENVCTL_NODE_RANK of $ENVCTL_NNODES master=$MASTER_ADDR:$MASTER_PORT run=$ENVCTL_RUN_ID"
        echo "rank=$ENVCTL_NODE_RANK setup: $(cat /opt/envctl-setup-mark)"
""" % BASE


@pytest.fixture
def other_image(tmp_path):
    """A whole `docker save` tarball of an image other than the export's (one file, imported)."""
    rootfs = io.BytesIO()
    with tarfile.open(fileobj=rootfs, mode="w") as tar:
        data = b"not the exported image\n"
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    ref = f"envctl-test/shell-other:{tmp_path.name[-20:].lower()}"
    imported = subprocess.run(["docker", "import", "-", ref], input=rootfs.getvalue(), capture_output=True, timeout=120)
    assert imported.returncode == 0, imported.stderr
    path = tmp_path / "other.tar"
    subprocess.run(["docker", "save", "-o", str(path), ref], check=True, timeout=120)
    yield ref, path
    subprocess.run(["docker", "image", "rm", "-f", ref], capture_output=True, timeout=120)


def _ship(world, host: str, source, name: str) -> str:
    """Copy a file into this test's directory on the lab host (world.clean removes it); its path there."""
    remote = f"{world.data_dir()}/shipped/{name}"
    target = world.remote(host, remote)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return remote


def test_the_shell_scripts_load_the_saved_image_on_servers_without_it(world, lab, other_image, tmp_path):
    ensure_base()
    world.write(BODY)
    built = world.run("build", str(world.manifest), timeout=600)
    assert built.returncode == 0, built.stderr
    baked = built.stdout.strip().splitlines()[-1]
    assert baked.startswith("envctl-baked/"), built.stdout
    world.cleanups.append(lambda: subprocess.run(["docker", "image", "rm", "-f", baked], capture_output=True))
    world.cleanups.append(lambda: [lab.docker(host, "image", "rm", "-f", baked) for host in ("lab1", "lab2", "lab3")])
    tarballs = {0: tmp_path / "baked.tar", 1: tmp_path / "baked.tar.gz"}
    for path in tarballs.values():
        saved = world.run("save", str(world.manifest), "-o", str(path), timeout=600)
        assert saved.returncode == 0, saved.stderr
    for host in ("lab1", *RANKS.values()):
        assert lab.docker(host, "image", "inspect", baked).returncode != 0, f"{host} already holds {baked}"

    out = tmp_path / "export"
    done = world.run("export", str(world.manifest), "--entrypoint", "show", "--nodes", "2", "--format", "shell",
                     "--image", baked, "--data-dir", world.data_dir(), "-o", str(out))
    assert done.returncode == 0, done.stderr
    master = lab.ip(RANKS[0])
    started = []
    for rank, host in RANKS.items():
        script = _ship(world, host, out / f"node-{rank}.sh", f"node-{rank}.sh")
        tarball = _ship(world, host, tarballs[rank], tarballs[rank].name)
        argv = ["env", f"ENVCTL_IMAGE_TARBALL={tarball}", "sh", script, *([master] if rank else [])]
        started.append(subprocess.Popen(lab.ssh_argv(host, *argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, stdin=subprocess.DEVNULL))
    results = [process.communicate(timeout=600) for process in started]
    local_id = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", baked], capture_output=True,
                              text=True).stdout.strip()
    for (rank, host), process, (stdout, stderr) in zip(RANKS.items(), started, results):
        assert process.returncode == 0, stdout + stderr
        assert f"Loaded image: {baked}" in stdout, stdout + stderr  # docker load, from the tarball
        assert f"rank={rank} of 2 master={master}:29500 run=" in stdout, stdout + stderr
        assert re.search(rf"^rank={rank} setup: baked in \d{{4}}$", stdout, re.M), stdout  # the baked image runs
        loaded = lab.docker(host, "image", "inspect", "-f", "{{.Id}}", baked).stdout.strip()
        assert loaded == local_id, (host, loaded, local_id)  # the image built here, not another
    assert len({re.search(r"run=(\S+)", stdout).group(1) for stdout, _ in results}) == 1, results

    # lab1 lacks the image: every way the tarball can be wrong is refused before docker run.
    script = _ship(world, "lab1", out / "node-0.sh", "node-0.sh")
    whole = tarballs[0].read_bytes()
    (tmp_path / "cut.tar").write_bytes(whole[: len(whole) // 2])
    other_ref, other_path = other_image
    world.cleanups.append(lambda: lab.docker("lab1", "image", "rm", "-f", other_ref))
    cases = {
        f"{world.data_dir()}/shipped/absent.tar": "cannot read ENVCTL_IMAGE_TARBALL=",
        _ship(world, "lab1", tmp_path / "cut.tar", "cut.tar"): "docker load could not load",
        _ship(world, "lab1", other_path, "other.tar"): f"does not hold {baked}",
    }
    for tarball, said in cases.items():
        refused = lab.ssh("lab1", "env", f"ENVCTL_IMAGE_TARBALL={tarball}", "sh", script, timeout=300)
        assert refused.returncode == 5, refused.stdout + refused.stderr
        assert said in refused.stderr, refused.stderr
        assert lab.docker("lab1", "image", "inspect", baked).returncode != 0
        assert "-node-" not in lab.docker("lab1", "ps", "-a", "--format", "{{.Names}}").stdout
    assert lab.docker("lab1", "image", "inspect", other_ref).returncode == 0  # what the other tarball held
