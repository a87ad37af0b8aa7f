"""A resource limit the container runtime refused, read from the runtimes' own texts (runc 1.1
as Docker 20.10-28 and containerd pass it on, runc 1.0-rc as Docker 19.03 did, crun as Podman
and Docker with crun do), named as the manifest names it, with where it was written."""

import pytest

from envctl.engine_errors import RLIMIT_HINT, RlimitRefused, rlimit_refused, with_ulimit_origin
from envctl.errors import EnvctlError
from envctl.manifest import docker_values
from envctl.manifest.provenance import Origin

RUNC_11 = ("failed to create shim task: OCI runtime create failed: runc create failed: unable to start container "
           "process: error during container init: error setting rlimits for ready process: error setting rlimit type "
           "{n}: operation not permitted: unknown")
RUNC_10 = ('OCI runtime create failed: container_linux.go:349: starting container process caused "process_linux.go:449: '
           'container init caused \\"process_linux.go:465: setting rlimits for ready process caused \\\\\\"error '
           'setting rlimit type {n}: operation not permitted\\\\\\"\\"": unknown')
CRUN = "crun: setrlimit `RLIMIT_{NAME}`: Operation not permitted: OCI permission denied"


@pytest.mark.parametrize("text, expected", [
    (RUNC_11.format(n=8), RlimitRefused("memlock", "RLIMIT_MEMLOCK", "operation not permitted")),  # the newcomer's
    (RUNC_11.format(n=7), RlimitRefused("nofile", "RLIMIT_NOFILE", "operation not permitted")),
    (RUNC_10.format(n=8), RlimitRefused("memlock", "RLIMIT_MEMLOCK", "operation not permitted")),
    (RUNC_10.format(n=6), RlimitRefused("nproc", "RLIMIT_NPROC", "operation not permitted")),
    (CRUN.format(NAME="MEMLOCK"), RlimitRefused("memlock", "RLIMIT_MEMLOCK", "operation not permitted")),
    (CRUN.format(NAME="NPROC"), RlimitRefused("nproc", "RLIMIT_NPROC", "operation not permitted")),
    ("crun: setrlimit `RLIMIT_NOFILE`: Invalid argument", RlimitRefused("nofile", "RLIMIT_NOFILE", "invalid argument")),
    (RUNC_11.format(n=3).replace("operation not permitted", "invalid argument"),
     RlimitRefused("stack", "RLIMIT_STACK", "invalid argument")),
])
def test_the_runtimes_words_name_the_limit(text, expected):
    assert rlimit_refused(text) == expected


@pytest.mark.parametrize("text", [
    "failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: "
    "exec: \"nosuch\": executable file not found in $PATH: unknown",
    RUNC_11.format(n=16),  # no such resource
    "",
])
def test_other_errors_are_not_limits(text):
    assert rlimit_refused(text) is None


def test_every_linux_resource_number_is_a_docker_ulimit_name():
    names = {rlimit_refused(RUNC_11.format(n=n)).ulimit for n in range(16)}
    assert names == set(docker_values.ULIMIT_NAMES) | {"as"}  # RLIMIT_AS: Docker does not offer it


def origins(table):
    return lambda path: table.get(path)


def test_the_error_names_the_entry_its_value_and_the_profile_line():
    error = EnvctlError(f"the engine could not start envctl-serve: {RUNC_11.format(n=8)}")
    origin = Origin("profile ascend910", "/srv/manifests/profiles/ascend910.yaml", 15, 14)
    located = with_ulimit_origin(error, "envctl-serve", {"memlock": -1, "stack": 67108864},
                                 origins({("container", "ulimits", "memlock"): origin}))
    assert located.message == ("the engine could not start envctl-serve: the runtime may not set the ulimit memlock "
                               "(RLIMIT_MEMLOCK): operation not permitted; container.ulimits.memlock: -1, set in profile "
                               "ascend910 at /srv/manifests/profiles/ascend910.yaml:15")
    assert located.hint == RLIMIT_HINT and "null" in located.hint


def test_a_limit_the_manifest_wrote_itself():
    error = EnvctlError(CRUN.format(NAME="NOFILE"))
    located = with_ulimit_origin(error, "envctl-x", {"nofile": "65536:1048577"},
                                 origins({("container", "ulimits", "nofile"): Origin("manifest", "/m/x.yaml", 9, 5)}))
    assert located.message.endswith("container.ulimits.nofile: 65536:1048577, set in the manifest at /m/x.yaml:9")


def test_a_limit_the_manifest_does_not_set_is_the_engines_default():
    error = EnvctlError(RUNC_11.format(n=8))
    located = with_ulimit_origin(error, "envctl-x", {}, origins({}))
    assert "not set by the manifest (container.ulimits has no memlock): the engine's own default (dockerd's " \
           "default-ulimits in /etc/docker/daemon.json)" in located.message


def test_other_failures_pass_unchanged():
    error = EnvctlError("the engine could not start envctl-x: port is already allocated")
    assert with_ulimit_origin(error, "envctl-x", {"memlock": -1}, origins({})) is error
