"""Edges of the quick `exec ENTRY --host H` (envctl/quick_exec.py) on the SSH lab, each a world
the record once held and no longer holds, or a run it cannot finish: the quick path must run
what the full path (ENVCTL_NO_QUICK=1) runs, print what it prints, and store no credential.

Which path answered is read from `python -X importtime`'s report (quick_answers.py). Never
timings. Each test first sees the quick path answer, so that each fails without its fix."""

from __future__ import annotations

import glob
import os

from quick_answers import envctl
from support import IMAGE
from test_quick_exec_remote import brought_up, records, same_but_the_log, started_quickly, tarball  # noqa: F401

SSH_PATH = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]  # sshd's default PATH


def test_a_profile_shadowed_in_an_earlier_directory_goes_to_the_full_path(world, lab, tarball):  # noqa: F811
    """The manifest extends a profile found in the user's profile directory; a file of the same
    name appearing in a directory searched before it (beside the manifest) is the profile the
    full path loads: the record fingerprints the file it read, not the ones searched before it."""
    user_profiles = world.base / "home" / ".config" / "envctl" / "manifests" / "profiles"
    user_profiles.mkdir(parents=True)
    name = f"{world.name}-p"
    (user_profiles / f"{name}.yaml").write_text("entrypoints:\n  said: {run: 'echo from-the-user-profile'}\n")
    world.write(f"extends: {name}\ndevice: {{kind: cpu}}\nimage: {{ref: {IMAGE}, tarball: {{source: {tarball}}}}}\n")
    made = envctl(world, "up", str(world.manifest), "--host", "lab1")
    assert made.code == 0, made
    assert started_quickly(world, "said", "--host", "lab1").stdout == "from-the-user-profile\n"
    shadowing = world.base / "profiles"
    shadowing.mkdir()
    (shadowing / f"{name}.yaml").write_text("entrypoints:\n  said: {run: 'echo from-beside-the-manifest'}\n")
    typed = envctl(world, "exec", "said", "--host", "lab1")  # first: the full path writes a record too
    full = envctl(world, "exec", "said", "--host", "lab1", quick=False)
    assert full.code == 0 and full.stdout == "from-beside-the-manifest\n", full
    assert same_but_the_log(typed) == same_but_the_log(full), typed


def test_a_host_whose_docker_cli_went_away_prints_the_full_paths_warnings_once(world, lab, tarball):  # noqa: F811
    """Recorded while the host had a docker CLI; then it has none: the run's command says so
    before anything runs, and the full path takes the forwarded socket. What the quick path
    printed before the run (the full path's warnings) must not be printed twice."""
    brought_up(world, tarball)
    quick = started_quickly(world, "fail", "--host", "lab1")  # LOG_LEVEL not set: a warning
    assert quick.stderr.count("warning: LOG_LEVEL is not set") == 1, quick
    clis = sorted({os.path.realpath(os.path.join(d, "docker")) for d in os.defpath.split(":") + SSH_PATH
                   if os.path.exists(os.path.join(d, "docker"))})
    hidden = []
    try:
        for cli in clis:  # hidden in lab1's own mount namespace (as test_remote_exec.py does)
            done = lab.run_in("lab1", "mount", "--bind", "/dev/null", cli)
            assert done.returncode == 0, done.stderr
            hidden.append(cli)
        assert lab.ssh("lab1", "sh", "-c", "'command -v docker'").returncode != 0
        typed = envctl(world, "exec", "fail", "--host", "lab1")
        full = envctl(world, "exec", "fail", "--host", "lab1", quick=False)
    finally:
        for cli in hidden:
            lab.run_in("lab1", "umount", cli)
    assert full.code == 3 and full.stderr.count("warning: LOG_LEVEL is not set") == 1, full
    assert same_but_the_log(typed) == same_but_the_log(full), (typed, full)


def test_a_credential_in_the_hosts_listing_is_never_stored(world, lab, tarball):  # noqa: F811
    """The environment brought up with a --var holding the value of a credential in the
    environment (HF_TOKEN): the container's labels (io.envctl.vars) hold it, and the listing the
    record compares would store it in the cache. No record then; the run is the full path's."""
    token = "hf_quickexeclabelsecret0123456789"
    world.write(f"vars: {{note: none}}\ndevice: {{kind: cpu}}\nimage: {{ref: {IMAGE}, tarball: {{source: {tarball}}}}}\n"
                "entrypoints:\n  said: {run: 'echo said'}\n")
    made = envctl(world, "up", str(world.manifest), "--host", "lab1", "--var", f"note={token}", HF_TOKEN=token)
    assert made.code == 0, made
    for _ in range(3):
        said = envctl(world, "exec", "said", "--host", "lab1", HF_TOKEN=token)
        assert not said.quick and said.code == 0 and said.stdout == "said\n", said
    assert records(world) == []
    for path in glob.glob(str(world.base / "cache" / "**"), recursive=True):
        if os.path.isfile(path):
            with open(path, "rb") as file:
                assert token.encode() not in file.read(), path
