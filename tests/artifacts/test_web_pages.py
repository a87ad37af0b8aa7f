"""A link that answers with a web page instead of the file — a share whose session expired or
that wants a password (Seafile, ownCloud/Nextcloud, Baidu-like shares), a Dropbox `dl=0`
preview — is refused: the page is never stored, placed or locked as the file (with no digest
pinned nothing else would notice). Server: tests/servers/misbehaving.py's LoginWallServer."""

from __future__ import annotations

from download_helpers import envctl, placed, write_manifest
from servers.misbehaving import LOGIN_PAGE, LoginWallServer


def test_a_login_page_is_never_taken_for_the_file(tmp_path):
    with LoginWallServer() as server:
        url = server.url_for("/d/KEY/files/?p=%2Fpytorch_model-00001-of-00002.bin&dl=1")
        manifest = write_manifest(tmp_path, f"shard1: {{source: '{url}'}}\n")
        for command in ("fetch", "lock"):
            run = envctl(tmp_path, command, str(manifest))
            assert run.returncode == 6, (command, run.stdout, run.stderr)
            assert "Traceback" not in run.stderr
            assert "answered with a web page (text/html; charset=utf-8) instead of the file" in run.stderr
            assert "share link may need a password, a login" in run.stderr
        assert not (manifest.parent / "manifest.lock").exists()
        stored = [p for p in (tmp_path / "cache").rglob("*") if p.is_file() and p.read_bytes() == LOGIN_PAGE]
        assert stored == []
        assert server.requests == 2  # refused at the probe (one HEAD per command): no GET of the page follows


def test_an_html_file_is_still_an_html_file(tmp_path):
    """A page named .html, or one the server hands out as an attachment, is what was asked for."""
    with LoginWallServer() as server:
        manifest = write_manifest(tmp_path, f"page: {{source: '{server.url_for('/d/docs/index.html')}'}}\n")
        fetched = envctl(tmp_path, "fetch", str(manifest))
        assert fetched.returncode == 0, fetched.stderr
        assert placed(fetched.stdout)["page"].read_bytes() == LOGIN_PAGE
    with LoginWallServer(attachment=True) as server:
        manifest = write_manifest(tmp_path, f"saved: {{source: '{server.url_for('/d/export?id=7')}'}}\n")
        fetched = envctl(tmp_path, "fetch", str(manifest))
        assert fetched.returncode == 0, fetched.stderr
        assert placed(fetched.stdout)["saved"].read_bytes() == LOGIN_PAGE
