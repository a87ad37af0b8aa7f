"""An explicit null removes what a lower layer set (README, "Profiles, variants and
variables"): a mapping's key, a whole mapping, a list, a scalar; from a profile under the
manifest and from the manifest under a variant. Lists are replaced whole, never merged."""

import pytest

from envctl.manifest.discovery import search_roots
from envctl.manifest.loader import load

PROFILE = """\
description: base
container:
  ulimits: {memlock: -1, stack: 67108864}
  env: {A: "1", B: "2"}
  cap_add: [SYS_PTRACE]
  shm_size: 64g
  mounts: ["/tmp:/hosttmp:ro"]
"""


def resolved(tmp_path, environ, container: str, variant: str = "", reference_variant: str | None = None):
    (tmp_path / "profiles").mkdir(exist_ok=True)
    (tmp_path / "profiles" / "base.yaml").write_text(PROFILE)
    manifest = tmp_path / "m.yaml"
    text = f"name: m\ndescription: d\nextends: base\ndevice: {{kind: cpu}}\nimage: {{ref: 'busybox:1'}}\ncontainer: {container}\n"
    if variant:
        text += f"default_variant: keep\nvariants: {{keep: {{}}, v: {variant}}}\n"
    manifest.write_text(text)
    reference = f"{manifest}:{reference_variant}" if reference_variant else manifest
    return load(reference, environ=dict(environ), roots=search_roots(dict(environ))).manifest.container


def test_without_nulls_the_profile_values_stay(tmp_path, clean_env):
    container = resolved(tmp_path, clean_env, "{}")
    assert container.ulimits == {"memlock": -1, "stack": 67108864}
    assert container.env == {"A": "1", "B": "2"}
    assert list(container.cap_add) == ["SYS_PTRACE"] and container.shm_size == "64g"


@pytest.mark.parametrize("written, field, expected", [
    ("{ulimits: {memlock: null}}", "ulimits", {"stack": 67108864}),  # one key of a mapping
    ("{env: {B: null}}", "env", {"A": "1"}),
    ("{ulimits: null}", "ulimits", {}),  # a whole mapping
    ("{cap_add: null}", "cap_add", []),  # a list
    ("{mounts: null}", "mounts", []),
    ("{shm_size: null}", "shm_size", None),  # a scalar
    ("{cap_add: [IPC_LOCK]}", "cap_add", ["IPC_LOCK"]),  # a list is replaced whole, not merged
    ("{cap_add: []}", "cap_add", []),
])
def test_null_in_the_manifest_removes_what_a_profile_set(tmp_path, clean_env, written, field, expected):
    value = getattr(resolved(tmp_path, clean_env, written), field)
    assert (list(value) if isinstance(value, (list, tuple)) else value) == expected


def test_null_in_a_variant_removes_what_the_manifest_or_profile_set(tmp_path, clean_env):
    variant = "{container: {ulimits: null, env: {A: null}, mounts: null}}"
    plain = resolved(tmp_path, clean_env, "{env: {C: '3'}}", variant)
    assert plain.ulimits and plain.env == {"A": "1", "B": "2", "C": "3"}  # the variant that removes nothing
    chosen = resolved(tmp_path, clean_env, "{env: {C: '3'}}", variant, reference_variant="v")
    assert chosen.ulimits == {} and chosen.env == {"B": "2", "C": "3"} and list(chosen.mounts) == []
    assert list(chosen.cap_add) == ["SYS_PTRACE"]


def readme_example() -> str:
    from support import REPO

    text = (REPO / "README.md").read_text()
    start = text.index("- **Removing an inherited value**")
    block = text[text.index("```yaml\n", start) + len("```yaml\n"):text.index("```\n", text.index("```yaml\n", start) + 8)]
    return "\n".join(line[2:] for line in block.splitlines()) + "\n"


def test_the_readme_example_does_what_it_says(tmp_path, clean_env):
    """The README's example over the shipped ascend910 profile: host networking removed, so
    that the port may be published (with it, ports are refused: tests below)."""
    manifest = tmp_path / "m.yaml"
    manifest.write_text("name: m\ndescription: d\nimage: {ref: 'busybox:1'}\ndefault_variant: full\n"
                        + readme_example().replace("variants:\n", "variants:\n  full: {}\n"))
    roots = search_roots(dict(clean_env))
    full = load(manifest, environ=dict(clean_env), roots=roots).manifest.container
    assert full.network is None and full.ipc == "host" and list(full.ports) == ["8000"]
    assert full.ulimits == {"stack": 67108864} and full.shm_size == "64g"
    small = load(f"{manifest}:small", environ=dict(clean_env), roots=roots).manifest.container
    assert small.ulimits == {} and small.shm_size is None and small.ipc == "host"
