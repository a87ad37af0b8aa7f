"""`up` places artifacts: fetched into the cache, mounted read-only, or copied writable."""

import subprocess

import pytest

from support import IMAGE

GIT = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]


def make_repo(path):
    path.mkdir()
    subprocess.run(GIT + ["init", "-q", "-b", "main"], cwd=path, check=True)
    (path / "tools").mkdir()
    (path / "tools" / "demo.py").write_text("print('demo')\n")
    (path / "requirements.txt").write_text("torch\ntransformers\n")
    subprocess.run(GIT + ["add", "-A"], cwd=path, check=True)
    subprocess.run(GIT + ["commit", "-qm", "one"], cwd=path, check=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, check=True).stdout.strip()


def test_up_fetches_mounts_read_only_and_copies_writable(make_env, tarballs, tmp_path):
    commit = make_repo(tmp_path / "upstream")
    weights = tmp_path / "nas" / "weights.bin"
    weights.parent.mkdir()
    weights.write_bytes(b"w" * 4096)
    env = make_env("cpu")
    env.write(f"""\
        device: {{kind: cpu}}
        image: {{ref: {IMAGE}, tarball: {{source: {tarballs.plain}}}}}
        artifacts:
          code:
            source: git+file://{tmp_path / 'upstream'}@{commit[:10]}
            target: /workspace/code
            mode: rw
          tools:
            source: git+file://{tmp_path / 'upstream'}@main
            subpath: tools
            target: /workspace/tools
          weights:
            source: {weights}
            target: /models/weights.bin
        setup:
          - name: comment torch out of requirements.txt, as the tutorials do
            run: sed -i 's/torch/# torch/' /workspace/code/requirements.txt
            uses: [code]
        """)
    done = env.run("up", str(env.manifest))
    assert done.returncode == 0, done.stderr
    assert f"artifact   code: fetched ({commit})" in done.stderr
    assert env.inside("cat /workspace/tools/demo.py")[1] == "print('demo')\n"
    assert env.inside("wc -c < /models/weights.bin")[1].strip() == "4096"
    assert env.inside("cat /workspace/code/requirements.txt")[1] == "# torch\ntransformers\n"
    assert env.inside("echo x > /workspace/tools/new")[0] != 0, "read-only artifact was writable"
    assert env.inside("echo x >> /models/weights.bin")[0] != 0
    # The cache is untouched by setup's edit: only the writable copy changed.
    cached = next((tmp_path / "cache" / "artifacts" / "git").rglob("requirements.txt"))
    assert cached.read_text() == "torch\ntransformers\n"
    again = env.run("up", str(env.manifest))
    assert "artifact   code: cached" in again.stderr and "setup      0 step(s) ran, 1 unchanged" in again.stderr
    offline = env.run("up", str(env.manifest), "--offline")
    assert offline.returncode == 0, offline.stderr


def test_up_offline_names_what_is_missing(make_env, tarballs, tmp_path):
    make_repo(tmp_path / "upstream")
    env = make_env("cpu")
    env.write(f"""\
        device: {{kind: cpu}}
        image: {{ref: {IMAGE}, tarball: {{source: {tarballs.plain}}}}}
        artifacts:
          code: {{source: "git+file://{tmp_path / 'upstream'}@main"}}
        """)
    done = env.run("up", str(env.manifest), "--offline")
    assert done.returncode == 6
    assert f"error: code: not in the cache (git+file://{tmp_path / 'upstream'}@main) and --offline was given" in done.stderr
    assert env.get() is None


@pytest.mark.both_engines
def test_an_image_tarball_over_http_is_downloaded_once_verified_and_loaded(make_env, tarballs, no_image, engine):
    import hashlib

    from servers.http_files import FileServer

    data = tarballs.gz.read_bytes()
    with FileServer(files={"/docker/pytorch.tar.gz": data}) as server:
        env = make_env("cpu")
        env.write(f"""\
            device: {{kind: cpu}}
            image:
              ref: {IMAGE}
              tarball: {{source: "{server.url_for('/docker/pytorch.tar.gz')}", sha256: {hashlib.sha256(data).hexdigest()}}}
            """)
        done = env.run("up", str(env.manifest))
        assert done.returncode == 0, done.stderr
        # "tagged" when an earlier test left the image's ID behind (as a built image's parent).
        assert f"image      {IMAGE}: loaded" in done.stderr or f"image      {IMAGE}: tagged" in done.stderr
        assert engine.images.get(IMAGE).id == tarballs.image_id
        assert server.bytes_sent == len(data)
        server.reset_counters()
        engine.images.remove(IMAGE, force=True)
        again = env.run("up", str(env.manifest))  # the image is gone, the tarball is cached
        assert again.returncode == 0, again.stderr
        assert server.requests == 0
