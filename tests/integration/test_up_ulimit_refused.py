"""`up` where the container runtime refuses a ulimit: the error names container.ulimits.<name>,
its value and the file and line that set it (a profile's, the manifest's, a variant's), not
runc's "error setting rlimit type N". Provoked for real: no process may raise its nofile hard
limit above /proc/sys/fs/nr_open, so runc's prlimit fails with EPERM on both engines (runc 1.1),
as memlock does for a rootless or nested engine (the newcomer's case, same words, type 8)."""

from pathlib import Path

import pytest

from support import IMAGE

NR_OPEN = int(Path("/proc/sys/fs/nr_open").read_text())
TOO_MANY = NR_OPEN * 2


def up(env):
    done = env.run("up", str(env.manifest))
    assert "Traceback" not in done.stderr
    return done


@pytest.mark.both_engines
def test_a_refused_ulimit_from_a_profile_names_the_profile_line(make_env, tarballs, no_image):
    env = make_env("cpu")
    profiles = env.manifest.parent / "profiles"
    profiles.mkdir(exist_ok=True)
    profile = profiles / f"{env.name}-limits.yaml"
    profile.write_text(f"description: limits\ncontainer:\n  ulimits:\n    stack: 67108864\n    nofile: {TOO_MANY}\n")
    env.write(f"extends: {env.name}-limits\ndevice: {{kind: cpu}}\nimage: {{ref: {IMAGE}, tarball: {{source: {tarballs.plain}}}}}\n")
    done = up(env)
    assert done.returncode == 8  # the engine refused the start (exit code table)
    assert (f"the engine could not start {env.container}: the runtime may not set the ulimit nofile (RLIMIT_NOFILE): "
            f"operation not permitted; container.ulimits.nofile: {TOO_MANY}, set in profile {env.name}-limits at "
            f"{profile}:5") in done.stderr, done.stderr
    assert "hint:" in done.stderr and "remove it with null over the layer that set it" in done.stderr
    assert "rlimit type" not in done.stderr
    assert env.get() is None  # no container that cannot start is left behind

    # the way out the hint names: null over the profile
    env.write(f"extends: {env.name}-limits\ndevice: {{kind: cpu}}\nimage: {{ref: {IMAGE}, tarball: {{source: {tarballs.plain}}}}}\n"
              "container:\n  ulimits: {nofile: null}\n")
    done = up(env)
    assert done.returncode == 0, done.stderr
    code, out = env.inside("ulimit -s")
    assert code == 0 and out.strip() == "65536"  # the profile's stack limit stayed (KiB)


def test_a_refused_ulimit_the_manifest_or_a_variant_wrote(make_env, tarballs, no_image):
    env = make_env("cpu")
    env.write(f"device: {{kind: cpu}}\nimage: {{ref: {IMAGE}, tarball: {{source: {tarballs.plain}}}}}\n"
              f"container:\n  ulimits: {{nofile: '1024:{TOO_MANY}'}}\n"
              f"default_variant: big\nvariants:\n  big: {{container: {{ulimits: {{nofile: {TOO_MANY}}}}}}}\n"
              "  own: {}\n")
    done = up(env)
    assert done.returncode == 8  # the engine refused the start (exit code table)
    assert f"container.ulimits.nofile: {TOO_MANY}, set in variant big at {env.manifest}:9" in done.stderr, done.stderr
    done = env.run("up", f"{env.manifest}:own")
    assert done.returncode == 8  # the engine refused the start (exit code table)
    assert f"container.ulimits.nofile: 1024:{TOO_MANY}, set in the manifest at {env.manifest}:6" in done.stderr, \
        done.stderr
