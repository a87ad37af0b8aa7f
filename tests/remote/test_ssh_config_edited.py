"""An ssh config edited between two commands is obeyed by the second at once: the alias pointed at
another server reaches that server, though the first command's master connection to the old one
is still alive (ControlPersist). Before, the master was named after the alias and the config
file's name alone, and the next command went on talking to the old server for two minutes
(`up` said "unchanged" with exit 0: the environment was not where the config said)."""

from __future__ import annotations

import shutil

from engines import CLASSIC, connect
from testimages import save_image

REF = "envctl-it/config-edited:1"


def test_an_alias_pointed_at_another_server_reaches_it_while_the_old_master_lives(world, tmp_path):
    tarball = tmp_path / "image.tar"
    save_image(connect(CLASSIC).client, {"etc/config-edited": b"1\n"}, tarball, REF)
    manifest = world.write(f"device: {{kind: cpu}}\nimage: {{ref: {REF}, tarball: {{source: {tarball}}}}}\n")
    config = tmp_path / "ssh_config"
    shutil.copyfile(world.lab.ssh_config, config)
    environ = world.environ(ENVCTL_SSH_CONFIG=str(config))
    for host in ("lab1", "lab2"):
        world.cleanups.append(lambda host=host: world.lab.docker(host, "rmi", "-f", REF))

    first = world.run("up", str(manifest), "--host", "lab1", env=environ)
    assert first.returncode == 0, first.stderr
    assert world.containers("lab1") and not world.containers("lab2")
    masters = {p.name for p in world.control_dir.iterdir() if not p.name.startswith("docker-") and "." not in p.name}

    # The alias lab1 now names lab2's address (its key is in the lab's known_hosts under it).
    text = config.read_text()
    old, new = f"HostName {world.lab.ip('lab1')}\n", f"HostName {world.lab.ip('lab2')}\n"
    assert text.count(old) == 1
    config.write_text(text.replace(old, new))

    again = world.run("up", str(manifest), "--host", "lab1", env=environ)
    assert again.returncode == 0, again.stderr
    assert world.containers("lab2") == [f"{world.container} running"], again.stderr
    assert "unchanged" not in again.stderr, again.stderr
    now = {p.name for p in world.control_dir.iterdir() if not p.name.startswith("docker-") and "." not in p.name}
    assert masters < now  # the old master still there (it expires by itself), a new one beside it

    status = world.run("status", "--host", "lab1", "--json", env=environ)
    assert status.returncode == 0 and world.container in status.stdout, status.stderr
    config.write_text(text)  # back: lab1 again, through the first master
    back = world.run("up", str(manifest), "--host", "lab1", env=environ)
    assert back.returncode == 0 and "unchanged" in back.stderr, back.stderr
