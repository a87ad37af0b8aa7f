"""Redirects that leave: a mirror that sends a file to a host its users cannot reach
(hf-mirror.com answers some Xet-stored files with a 302 to cas-bridge.xethub.hf.co,
github.com/padeoe/hf-mirror-site/issues/50; the same request through the mirror's own bridge
works), a redirect to a dead port or an unknown name, and a redirect loop. Each is named once,
with what to do; none is retried four times or offered a resume that cannot work."""

from __future__ import annotations

import os

from download_helpers import dead_port, envctl, write_manifest
from servers.fixtures import file_server  # noqa: F401
from servers.hf_endpoint import LFS_REDIRECT_SIGNATURE, HFEndpoint

MiB = 1 << 20


def hub(endpoint: HFEndpoint) -> dict[str, bytes]:
    files = {"config.json": b'{"model_type": "qwen2"}\n', "model.safetensors": os.urandom(2 * MiB)}
    endpoint.add_repo("Qwen/Qwen2.5-0.5B", files=files)
    return files


def test_a_mirror_redirecting_outside_hf_endpoint_is_named_and_not_retried(tmp_path):
    dead = dead_port()
    with HFEndpoint(lfs_redirect=f"http://localhost:{dead}") as mirror:
        files = hub(mirror)
        endpoint = mirror.url
        manifest = write_manifest(tmp_path, "m: {source: 'hf://Qwen/Qwen2.5-0.5B@main'}\n")
        done = envctl(tmp_path, "fetch", str(manifest), env={"HF_ENDPOINT": endpoint})
        resolves = [h for h in mirror.hits if h.path.endswith("/model.safetensors")]
    assert done.returncode == 6, done.stderr
    assert (f"m: hf://Qwen/Qwen2.5-0.5B@main/model.safetensors: the mirror {endpoint} redirected outside HF_ENDPOINT, "
            f"to localhost:{dead}, which cannot be reached from here (connection refused)") in done.stderr
    assert "running again will not help. Point HF_ENDPOINT at a mirror that serves it" in done.stderr
    assert "run again to resume" not in done.stderr and "tries" not in done.stderr
    assert len(resolves) == 1  # asked once: the mirror would only redirect again
    assert LFS_REDIRECT_SIGNATURE not in done.stdout + done.stderr
    # What the mirror did serve is kept for the next run.
    blobs = tmp_path / "cache" / "blobs" / "sha256"
    assert any(p.read_bytes() == files["config.json"] for p in blobs.iterdir())


def test_a_mirror_redirecting_to_a_reachable_cdn_still_works(tmp_path):
    with HFEndpoint(cdn=True) as mirror:
        files = hub(mirror)
        manifest = write_manifest(tmp_path, "m: {source: 'hf://Qwen/Qwen2.5-0.5B@main'}\n")
        done = envctl(tmp_path, "fetch", str(manifest), env={"HF_ENDPOINT": mirror.url})
    assert done.returncode == 0, done.stderr
    tree = tmp_path / "cache" / "artifacts" / "hf" / "Qwen" / "Qwen2.5-0.5B" / "main"
    assert (tree / "model.safetensors").read_bytes() == files["model.safetensors"]


def test_a_redirect_to_a_dead_port_or_an_unknown_name_is_not_retried(tmp_path, file_server):
    dead = dead_port()
    file_server.redirects.update({"/a.bin": f"http://127.0.0.1:{dead}/a.bin",
                                  "/b.bin": "http://envctl-test.invalid/b.bin"})  # RFC 6761: never resolves
    manifest = write_manifest(tmp_path, f"""\
        a: {{source: '{file_server.url_for("/a.bin")}'}}
        b: {{source: '{file_server.url_for("/b.bin")}'}}
    """)
    done = envctl(tmp_path, "fetch", str(manifest))
    assert done.returncode == 6
    assert (f"a: {file_server.url_for('/a.bin')}: the server redirected to 127.0.0.1:{dead}, which cannot be reached "
            "from here (connection refused)") in done.stderr
    assert (f"b: {file_server.url_for('/b.bin')}: the server redirected to envctl-test.invalid, which cannot be reached "
            "from here (the host name does not resolve)") in done.stderr
    assert "run again to resume" not in done.stderr
    assert [h.path for h in file_server.hits].count("/a.bin") == 1 and [h.path for h in file_server.hits].count("/b.bin") == 1


def test_a_redirect_loop_is_reported_once(tmp_path, file_server):
    file_server.redirects.update({"/loop.bin": "/loop2.bin", "/loop2.bin": "/loop.bin"})
    done = envctl(tmp_path, "fetch", str(write_manifest(tmp_path, f"l: {{source: '{file_server.url_for('/loop.bin')}'}}\n")))
    assert done.returncode == 6
    assert f"l: {file_server.url_for('/loop.bin')}: the server redirects in a loop" in done.stderr
    assert "Traceback" not in done.stderr
    assert file_server.requests <= 31  # requests' limit of 30 redirects, followed once, not four times
