"""envctl/remote/ssh_config_files.py: the digest naming a master changes with any byte of any
file ssh reads for its options (the -F file, its Include'd files however written), and with
nothing else; a FIFO given as the config is neither waited on nor read."""

from __future__ import annotations

import os
import threading

from envctl.remote import live_master
from envctl.remote.ssh_config_files import _included, config_identity


def test_an_edit_of_the_config_changes_the_identity_and_nothing_else_does(tmp_path):
    config = tmp_path / "ssh_config"
    config.write_text("Host lab1\n  HostName 10.0.0.1\n")
    first = config_identity(str(config))
    assert config_identity(str(config)) == first
    os.utime(config, (1, 1))  # touched, same bytes: the same config
    assert config_identity(str(config)) == first
    config.write_text("Host lab1\n  HostName 10.0.0.2\n")
    assert config_identity(str(config)) != first
    name = live_master.control_name("lab1", str(config))
    config.write_text("Host lab1\n  HostName 10.0.0.1\n")
    assert config_identity(str(config)) == first  # back as it was: the first master's name again
    assert live_master.control_name("lab1", str(config)) != name
    assert live_master.forward_name("lab1", str(config), "/run/docker.sock") != \
        live_master.forward_name("lab1", str(config), "/var/run/docker.sock")


def test_an_absent_config_and_an_empty_one_differ(tmp_path):
    config = tmp_path / "ssh_config"
    absent = config_identity(str(config))
    config.write_text("")
    assert config_identity(str(config)) != absent


def test_included_files_count_however_the_include_is_written(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home" / "conf.d").mkdir(parents=True)
    spaced = tmp_path / "with space"
    spaced.mkdir()
    globbed = tmp_path / "hosts.d"
    globbed.mkdir()
    (globbed / "a.conf").write_text("Host a\n")
    (tmp_path / "home" / "conf.d" / "tilde.conf").write_text("Host t\n")
    (spaced / "q.conf").write_text("Host q\n")
    (tmp_path / "eq.conf").write_text("Host e\n")
    config = tmp_path / "ssh_config"
    config.write_text(f"# Include {tmp_path}/never.conf\n"
                      f"Host *\n  include {globbed}/*.conf\n"
                      f"INCLUDE ~/conf.d/tilde.conf \"{spaced}/q.conf\"\n"
                      f"Include={tmp_path}/eq.conf\n")
    before = config_identity(str(config))
    for edited in (globbed / "a.conf", tmp_path / "home" / "conf.d" / "tilde.conf", spaced / "q.conf",
                   tmp_path / "eq.conf"):
        text = edited.read_text()
        edited.write_text(text + "  Port 2222\n")
        assert config_identity(str(config)) != before, edited
        edited.write_text(text)
        assert config_identity(str(config)) == before, edited
    (globbed / "b.conf").write_text("Host b\n")  # a new file the glob takes
    assert config_identity(str(config)) != before
    (tmp_path / "never.conf").write_text("Host n\n")  # named in a comment only
    (globbed / "b.conf").unlink()
    assert config_identity(str(config)) == before


def test_a_relative_include_counts_under_home_when_home_is_not_the_password_databases(tmp_path, monkeypatch):
    """OpenSSH 9.2 takes a user file's relative Include from $HOME/.ssh (`ssh -G` with HOME
    set elsewhere reads it there), others from the password database's home: both count."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    included = home / ".ssh" / "rel.conf"
    included.write_text("Host lab1\n  HostName 10.0.0.1\n")
    config = tmp_path / "main.conf"
    for line in ("Include rel.conf", "Include=rel.conf", 'Include "rel.conf"', "Include ~/.ssh/rel.conf"):
        config.write_text(line + "\n")
        before = config_identity(str(config))
        included.write_text("Host lab1\n  HostName 10.0.0.2\n")
        assert config_identity(str(config)) != before, line
        included.write_text("Host lab1\n  HostName 10.0.0.1\n")
        assert config_identity(str(config)) == before, line


def test_a_config_including_itself_ends(tmp_path):
    config = tmp_path / "ssh_config"
    config.write_text(f"Include {config}\nInclude {tmp_path}/*\n")
    assert len(config_identity(str(config))) == 16


def test_the_include_lines_are_read_as_ssh_config_5_writes_them():
    assert _included(b'Include a b\n  include\t"c d" e\nInclude=f\n#Include g\nIncludeX h\nInclude i\tj\n') == \
        ["a", "b", "c d", "e", "f", "i", "j"]


def test_a_fifo_given_as_the_config_is_not_read(tmp_path):
    fifo = tmp_path / "ssh_config"
    os.mkfifo(fifo)
    done = []
    worker = threading.Thread(target=lambda: done.append(config_identity(str(fifo))), daemon=True)
    worker.start()
    worker.join(10)
    assert done and len(done[0]) == 16  # not blocked waiting for a writer
