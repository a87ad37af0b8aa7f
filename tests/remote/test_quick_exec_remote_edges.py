"""Edges of the quick `exec ENTRY --host H` (envctl/quick_exec.py) on the SSH lab, each a world
the record once held and no longer holds, or a run it cannot finish: the quick path must run
what the full path (ENVCTL_NO_QUICK=1) runs, print what it prints, and store no credential.

Which path answered is read from `python -X importtime`'s report (quick_answers.py). Never
timings. Each test first sees the quick path answer, so that each fails without its fix."""

from __future__ import annotations

import glob
import os
import shlex
import subprocess
import sys

from quick_answers import envctl
from support import IMAGE
from test_quick_exec_remote import BODY, brought_up, records, same_but_the_log, started_quickly, tarball  # noqa: F401

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


def test_output_into_a_pipe_closed_early_ends_as_the_full_paths(world, lab, tarball):  # noqa: F811
    """`envctl exec big --host lab1 | head -1`: the reader goes away while the run prints. The
    full path (click under typer) exits 1 and says nothing more; the quick path must too, not
    'envctl hit an internal error (a bug)' with 70."""
    body = BODY.format(image=IMAGE, tarball=tarball, greeting="hi", more_passed="").replace(
        "entrypoints:\n", "entrypoints:\n  big: {run: 'seq 1 100000'}\n")
    path = world.write(body)
    (path.parent / "run.env").write_text("FROM_FILE=from-the-file\n")
    assert envctl(world, "up", str(path), "--host", "lab1").code == 0
    started_quickly(world, "big", "--host", "lab1")

    def into_head(quick: bool) -> tuple:
        environ = world.environ(**({} if quick else {"ENVCTL_NO_QUICK": "1"}))
        err = shlex.quote(str(world.base / "err.txt"))  # in the line: a variable more is another record's key
        line = (f"{sys.executable} -X importtime -m envctl exec big --host lab1 2>{err} | head -1; "
                f"echo \"rc=${{PIPESTATUS[0]}}\"; cat {err}")
        done = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=300, env=environ)
        said = done.stdout.splitlines(keepends=True)
        # The full path records (quick_exec_record); an error the quick path let escape imports cli_app too.
        return "envctl.quick_exec_record" not in done.stdout, "".join(s for s in said if not s.startswith("import time:"))

    typed = into_head(quick=True)  # first: the full path's record is removed as it starts
    full = into_head(quick=False)
    assert typed[0] and not full[0], (typed, full)
    assert full[1].startswith("1\nrc=1\n"), full
    assert typed[1] == full[1], (typed, full)


def test_a_record_under_another_commands_name_is_not_read(world, lab, tarball):  # noqa: F811
    """Each record is named by its command's key (quick_up.record_key); its bytes say nothing of
    which command they answer. Renamed to another command's name (a cache on a group-writable
    disk, which read_record's owner and mode checks anticipate: a directory's writer renames
    what it cannot write), `exec hello` would start the run of `exec fail`."""
    brought_up(world, tarball)
    started_quickly(world, "hello", "--host", "lab1")
    hello, = records(world)
    started_quickly(world, "fail", "--host", "lab1")
    fail, = set(records(world)) - {hello}
    os.replace(fail, hello)
    typed = envctl(world, "exec", "hello", "--host", "lab1")
    full = envctl(world, "exec", "hello", "--host", "lab1", quick=False)
    assert full.code == 0 and full.stdout.startswith("level= file=from-the-file greeting=hi"), full
    assert same_but_the_log(typed) == same_but_the_log(full), typed


def test_a_manifest_reading_a_variable_the_key_leaves_out_is_not_recorded(world, lab, tarball):  # noqa: F811
    """The record's key holds every environment variable but the shell's bookkeeping
    (quick_up.SHELL_ONLY: SSH_CONNECTION changes with each login, SHLVL with each shell). A
    manifest that interpolates one of them resolves to another run when it changes: the quick
    path, keyed without it, started the run resolved from the old value."""
    world.write(f"device: {{kind: cpu}}\nimage: {{ref: {IMAGE}, tarball: {{source: {tarball}}}}}\n"
                "entrypoints:\n  said: {run: 'echo \"from=$FROM\"', env: {FROM: '${SSH_CONNECTION:-here}'}}\n")
    assert envctl(world, "up", str(world.manifest), "--host", "lab1").code == 0
    first = "10.0.0.1 50000 10.0.0.2 22"
    for _ in range(2):  # the second: the quick path, were the first recorded
        said = envctl(world, "exec", "said", "--host", "lab1", SSH_CONNECTION=first)
        assert said.code == 0 and said.stdout == f"from={first}\n", said
    second = "10.0.0.9 50001 10.0.0.2 22"
    typed = envctl(world, "exec", "said", "--host", "lab1", SSH_CONNECTION=second)
    assert typed.code == 0 and typed.stdout == f"from={second}\n", typed
    assert not said.quick and records(world) == []
