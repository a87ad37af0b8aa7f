"""The inventory file (hosts, ranges, groups, defaults) and host selection: pure, no SSH."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from envctl.errors import EXIT_MANIFEST_INVALID, EXIT_USAGE, EnvctlError, ManifestError
from envctl.remote.inventory import (
    MAX_RANGE,
    HostEntry,
    Inventory,
    expand_range,
    inventory_path,
    load_inventory,
    select,
    split_names,
)

EXAMPLE = """\
defaults:
  data_dir: /data/envctl
  fetch: remote
  env: {HF_ENDPOINT: https://hf-mirror.com}
hosts:
  lab[1-4]:
    ssh: "{name}.lab.example"
  lab5:
    ssh: root@10.0.0.5
    fetch: push
    cards: 0-3
    root: /srv/fakehost
    env: {HF_TOKEN: hf_topsecret, HF_ENDPOINT: null}
  node[01-03]:
groups:
  mlu: [lab1, lab2, "lab[3-4]"]
  all-ascend: [lab5]
  everything: [mlu, all-ascend]
"""


def write(tmp_path: Path, text: str, name: str = "inventory.yaml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    """The problems of an inventory, as printed, with its path shortened to `inv`."""
    path = write(tmp_path, text)
    with pytest.raises(ManifestError) as caught:
        load_inventory(path, {})
    assert caught.value.exit_code == EXIT_MANIFEST_INVALID
    return [str(p).replace(str(path), "inv") for p in caught.value.problems]


@pytest.fixture
def example(tmp_path) -> Inventory:
    return load_inventory(write(tmp_path, EXAMPLE), {})


# ---------------------------------------------------------------------------- loading


def test_the_example_resolves_every_host_with_defaults_and_its_own_settings(example, tmp_path):
    file = str(tmp_path / "inventory.yaml")
    assert list(example.hosts) == ["lab1", "lab2", "lab3", "lab4", "lab5", "node01", "node02", "node03"]
    assert example.hosts["lab3"] == HostEntry(
        name="lab3", ssh="lab3.lab.example", data_dir="/data/envctl", fetch="remote", cards=None, root="/",
        env={"HF_ENDPOINT": "https://hf-mirror.com"}, defined_at=f"{file}:6",
    )
    assert example.hosts["lab5"] == HostEntry(
        name="lab5", ssh="root@10.0.0.5", data_dir="/data/envctl", fetch="push", cards=(0, 1, 2, 3), root="/srv/fakehost",
        env={"HF_TOKEN": "hf_topsecret"}, defined_at=f"{file}:8",
    )
    # A host with no settings at all: the defaults, and its own name as SSH destination.
    assert example.hosts["node02"].ssh == "node02"
    assert example.hosts["node02"].data_dir == "/data/envctl"
    assert example.file == file


def test_groups_are_flattened_in_order_through_nested_groups(example):
    assert example.groups == {
        "mlu": ("lab1", "lab2", "lab3", "lab4"),
        "all-ascend": ("lab5",),
        "everything": ("lab1", "lab2", "lab3", "lab4", "lab5"),
    }


def test_a_null_setting_resets_it_to_envctl_default(tmp_path):
    inventory = load_inventory(write(tmp_path, """\
        defaults:
          data_dir: /data/envctl
          cards: 2
          root: /srv/sim
          env: {A: "1", B: "2"}
        hosts:
          plain:
          reset:
            data_dir: null
            cards: null
            root: null
            env: {A: null, C: 3}
          noenv:
            env: null
    """), {})
    plain, reset, noenv = (inventory.hosts[n] for n in ("plain", "reset", "noenv"))
    assert (plain.data_dir, plain.cards, plain.root, plain.env) == ("/data/envctl", 2, "/srv/sim", {"A": "1", "B": "2"})
    # env merges per variable; null drops an inherited one; numbers become text.
    assert (reset.data_dir, reset.cards, reset.root, reset.env) == (None, None, "/", {"B": "2", "C": "3"})
    assert noenv.env == {}


def test_an_empty_file_is_an_empty_inventory(tmp_path):
    inventory = load_inventory(write(tmp_path, ""), {})
    assert (inventory.hosts, inventory.groups) == ({}, {})


def test_hosts_of_a_range_are_located_at_its_line(tmp_path):
    path = write(tmp_path, "hosts:\n  a[1-2]:\n")
    inventory = load_inventory(path, {})
    assert [h.defined_at for h in inventory.hosts.values()] == [f"{path}:2", f"{path}:2"]
    with pytest.raises(ManifestError) as caught:
        load_inventory(write(tmp_path, "hosts:\n  a[2-1]:\n"), {})
    assert str(caught.value) == f"{path}:2:3: hosts.a[2-1]: bad range '[2-1]': 2-1 counts down (write 1-2)"


# ---------------------------------------------------------------------------- ranges


@pytest.mark.parametrize("pattern, names", [
    ("lab5", ["lab5"]),
    ("lab[1-3]", ["lab1", "lab2", "lab3"]),
    ("node[01-03]", ["node01", "node02", "node03"]),
    ("node[08-11]", ["node08", "node09", "node10", "node11"]),
    ("n[001-2]", ["n001", "n002"]),
    ("n[0-2]", ["n0", "n1", "n2"]),  # a lone 0 asks for no padding
    ("n[9-10]", ["n9", "n10"]),
    ("lab[1,3,5-6]", ["lab1", "lab3", "lab5", "lab6"]),
    ("lab[7]", ["lab7"]),
    ("rack[1-2]-gpu[1-2]", ["rack1-gpu1", "rack1-gpu2", "rack2-gpu1", "rack2-gpu2"]),
    ("[1-2].lab", ["1.lab", "2.lab"]),
])
def test_ranges_expand_in_order_keeping_padding(pattern, names):
    assert expand_range(pattern) == names


@pytest.mark.parametrize("pattern, message", [
    ("lab[4-1]", "bad range '[4-1]': 4-1 counts down (write 1-4)"),
    ("lab[a-3]", "bad range '[a-3]': 'a-3' is not a number or a range of numbers (write [1-4] or [01-12])"),
    ("lab[1-]", "bad range '[1-]': '1-' is not a number or a range of numbers (write [1-4] or [01-12])"),
    ("lab[1,,2]", "bad range '[1,,2]': '' is not a number or a range of numbers (write [1-4] or [01-12])"),
    ("lab[]", "empty brackets '[]' (write [1-4])"),
    ("lab[1-3", "'lab[1-3' has unbalanced or nested brackets (write lab[1-4] or rack[1-2]-gpu[1-2])"),
    ("lab1-3]", "'lab1-3]' has unbalanced or nested brackets (write lab[1-4] or rack[1-2]-gpu[1-2])"),
    ("lab[[1-3]]", "'lab[[1-3]]' has unbalanced or nested brackets (write lab[1-4] or rack[1-2]-gpu[1-2])"),
    ("n[1-2000]", f"'n[1-2000]' expands to 2000 names (at most {MAX_RANGE})"),
    ("n[1-40]-g[1-40]", f"'n[1-40]-g[1-40]' expands to 1600 names (at most {MAX_RANGE})"),
])
def test_bad_ranges_say_what_is_wrong(pattern, message):
    with pytest.raises(ValueError) as caught:
        expand_range(pattern)
    assert str(caught.value) == message


def test_a_bad_range_in_the_file_is_located_at_its_key(tmp_path):
    assert problems(tmp_path, """\
        hosts:
          ok1:
          lab[4-1]:
          lab[a-3]:
    """) == [
        "inv:3:3: hosts.lab[4-1]: bad range '[4-1]': 4-1 counts down (write 1-4)",
        "inv:4:3: hosts.lab[a-3]: bad range '[a-3]': 'a-3' is not a number or a range of numbers (write [1-4] or [01-12])",
    ]


def test_a_host_defined_twice_after_expansion_names_both_places(tmp_path):
    assert problems(tmp_path, """\
        hosts:
          lab[1-4]:
            ssh: "{name}.example"
          lab3:
            ssh: root@10.0.0.3
          node[01-02]:
          node[02-03]:
    """) == [
        "inv:4:3: hosts.lab3: host 'lab3' is defined twice (first by 'lab[1-4]' at line 2)",
        "inv:7:3: hosts.node[02-03]: host 'node02' is defined twice (first by 'node[01-02]' at line 6)",
    ]


def test_a_range_of_hosts_cannot_share_one_ssh_destination(tmp_path):
    assert problems(tmp_path, """\
        defaults:
          ssh: root@bastion
        hosts:
          lab[1-2]:
            ssh: root@10.0.0.1
          solo[1]:
            ssh: root@10.0.0.9
    """) == [
        "inv:2:8: defaults.ssh: a default ssh must contain {name}, or every host would reach the same machine",
        "inv:5:10: hosts.lab[1-2].ssh: 'lab[1-2]' is 2 hosts: their ssh must contain {name}, or all would reach the same machine",
    ]


def test_a_default_ssh_template_applies_to_inventory_hosts(tmp_path):
    inventory = load_inventory(write(tmp_path, """\
        defaults:
          ssh: "admin@{name}.lab"
        hosts:
          lab[1-2]:
          lab9:
            ssh: lab9-via-bastion
    """), {})
    assert [h.ssh for h in inventory.hosts.values()] == ["admin@lab1.lab", "admin@lab2.lab", "lab9-via-bastion"]


# ---------------------------------------------------------------------------- validation


def test_unknown_keys_are_located_with_a_did_you_mean(tmp_path):
    assert problems(tmp_path, """\
        defaults:
          datadir: /data
        hostz:
          lab1:
        hosts:
          lab2:
            fetsh: push
            colour: red
    """) == [
        "inv:2:3: defaults.datadir: unknown key 'datadir' (did you mean 'data_dir'?)",
        "inv:3:1: hostz: unknown key 'hostz' (did you mean 'hosts'?)",
        "inv:7:5: hosts.lab2.fetsh: unknown key 'fetsh' (did you mean 'fetch'?)",
        "inv:8:5: hosts.lab2.colour: unknown key 'colour'; expected one of: ssh, data_dir, fetch, cards, root, env, data_addr, mirrors",
    ]


def test_every_setting_is_checked(tmp_path):
    assert problems(tmp_path, """\
        hosts:
          a:
            fetch: pull
          b:
            fetch: pussh
          c:
            data_dir: data/envctl
            root: 7
          d:
            ssh: -oProxyCommand=evil
          e:
            ssh: "root @host"
          f:
            cards: true
          g:
            cards: 3-0
          h:
            env: [A=1]
          i: [lab1]
    """) == [
        "inv:3:12: hosts.a.fetch: 'pull' is not one of remote, push",
        "inv:5:12: hosts.b.fetch: 'pussh' is not one of remote, push (did you mean 'push'?)",
        "inv:7:15: hosts.c.data_dir: 'data/envctl': data_dir must be an absolute path on that host",
        "inv:8:11: hosts.c.root: expected an absolute path, got an integer",
        "inv:10:10: hosts.d.ssh: '-oProxyCommand=evil' starts with '-': ssh would read it as an option",
        "inv:12:10: hosts.e.ssh: 'root @host' contains a space: not an SSH destination",
        "inv:14:12: hosts.f.cards: expected a card count (2) or card indices (0,1 or 0-3 or [0, 1]), got a boolean (True)",
        "inv:16:12: hosts.g.cards: '3-0': the range '3-0' runs backwards (write 0-3)",
        "inv:18:10: hosts.h.env: expected a mapping of variables (NAME: value), got a list",
        "inv:19:6: hosts.i: expected a mapping of settings (ssh:, fetch:, ...) or nothing, got a list",
    ]


def test_cards_are_read_as_the_command_line_reads_them(tmp_path):
    inventory = load_inventory(write(tmp_path, """\
        hosts:
          a: {cards: 0-3}
          b: {cards: "0,2"}
          c: {cards: 4}
          d: {cards: 0}
          e: {cards: [3, 1]}
    """), {})
    assert [h.cards for h in inventory.hosts.values()] == [(0, 1, 2, 3), (0, 2), 4, 0, (3, 1)]


def test_host_and_group_names_are_checked(tmp_path):
    assert problems(tmp_path, """\
        hosts:
          root@lab1:
          "-lab2":
          lab3:
        groups:
          lab3: [lab3]
          "bad group": [lab3]
          empty: []
          single: lab3
          numbers: [1]
    """) == [
        "inv:2:3: hosts.root@lab1: 'root@lab1' is not a valid name (letters, digits, '.', '_', '-'; starting with a letter or digit); put a user@host destination under ssh:",
        "inv:3:3: hosts.-lab2: '-lab2' is not a valid name (letters, digits, '.', '_', '-'; starting with a letter or digit)",
        "inv:6:3: groups.lab3: 'lab3' is already a host (defined at inv:4); a group needs a name of its own",
        "inv:7:3: groups.bad group: 'bad group' is not a valid name (letters, digits, '.', '_', '-'; starting with a letter or digit)",
        "inv:8:10: groups.empty: expected a non-empty list of hosts and groups, got an empty list",
        "inv:9:11: groups.single: expected a non-empty list of hosts and groups, got text",
        "inv:10:13: groups.numbers[0]: expected a host or group name, got an integer",
    ]


def test_unknown_group_members_are_errors_with_a_did_you_mean(tmp_path):
    assert problems(tmp_path, """\
        hosts:
          lab[1-4]:
            ssh: "{name}"
        groups:
          mlu: [lab1, lab7, "lab[3-5]"]
          big: [mlx, lab1]
    """) == [
        "inv:5:15: groups.mlu[1]: no host or group named 'lab7' (did you mean 'lab4'?)",
        "inv:5:21: groups.mlu[2]: no host or group named 'lab5' (from 'lab[3-5]') (did you mean 'lab4'?)",
        "inv:6:9: groups.big[0]: no host or group named 'mlx' (did you mean 'mlu'?)",
    ]


def test_groups_in_a_cycle_are_an_error(tmp_path):
    assert problems(tmp_path, """\
        hosts:
          a:
        groups:
          one: [a, two]
          two: [three]
          three: [one]
          self: [self]
    """) == [
        "inv:6:11: groups.three[0]: groups contain each other in a cycle: one → two → three → one",
        "inv:7:10: groups.self[0]: groups contain each other in a cycle: self → self",
    ]


def test_a_bad_range_as_group_member_is_located_at_the_member(tmp_path):
    assert problems(tmp_path, """\
        hosts:
          lab1:
        groups:
          g: [lab1, "lab[3-1]"]
    """) == ["inv:4:13: groups.g[1]: bad range '[3-1]': 3-1 counts down (write 1-3)"]


def test_yaml_problems_are_located_too(tmp_path):
    assert problems(tmp_path, "hosts:\n  lab1:\n  lab1:\n") == [
        "inv:3:3: hosts.lab1: duplicate key 'lab1' (first defined at line 2)",
    ]
    assert problems(tmp_path, "groups:\n  mlu: [lab1, lab[3-4]]\n") == [
        "inv:2:18: YAML syntax error: while parsing a flow sequence, expected ',' or ']', but got '['",
    ]
    assert problems(tmp_path, "- lab1\n- lab2\n") == [
        "inv:1:1: an inventory is a mapping (defaults:, hosts:, groups:), got a list",
    ]


# ---------------------------------------------------------------------------- secrets


def test_env_values_never_appear_in_repr_or_str(example):
    lab5 = example.hosts["lab5"]
    for text in (repr(lab5), str(lab5), repr(example), str(example), repr(list(example.hosts.values()))):
        assert "hf_topsecret" not in text
        assert "hf-mirror.com" not in text
    assert "env={'HF_TOKEN': ***}" in repr(lab5)
    # The values to redact from a remote's output: credential-looking names only.
    assert lab5.secrets == frozenset({"hf_topsecret"})
    assert example.hosts["lab1"].secrets == frozenset()


def test_env_values_never_appear_in_error_messages(tmp_path):
    lines = problems(tmp_path, """\
        defaults:
          env:
            HF_TOKEN: [hf_listsecret]
            MY_PASSWORD: {inner: hf_mapsecret}
            FLAG: yes
            "BAD-NAME": hf_namesecret
        hosts:
          lab1:
            env: {API_KEY: hf_fine, "1X": hf_othersecret}
            fetch: nope
    """)
    assert lines == [
        "inv:3:15: defaults.env.HF_TOKEN: expected text, got a list",
        "inv:4:18: defaults.env.MY_PASSWORD: expected text, got a mapping",
        "inv:5:11: defaults.env.FLAG: expected text, got a boolean (quote it: 'true')",
        "inv:6:5: defaults.env.BAD-NAME: 'BAD-NAME' cannot be an environment variable name",
        "inv:9:29: hosts.lab1.env.1X: '1X' cannot be an environment variable name",
        "inv:10:12: hosts.lab1.fetch: 'nope' is not one of remote, push",
    ]
    assert "secret" not in "\n".join(lines) and "hf_fine" not in "\n".join(lines)


def test_host_entries_are_hashable_and_frozen(example):
    lab5 = example.hosts["lab5"]
    assert len({lab5, example.hosts["lab5"], example.hosts["lab1"]}) == 2
    with pytest.raises(AttributeError):
        lab5.fetch = "remote"  # type: ignore[misc]


# ---------------------------------------------------------------------------- selection


def test_split_names_keeps_commas_inside_ranges():
    assert split_names("lab1,lab[2,3], mlu,,") == ["lab1", "lab[2,3]", "mlu"]
    assert split_names(["lab1", "lab2,lab3"]) == ["lab1", "lab2", "lab3"]
    assert split_names("") == []


def test_selection_keeps_order_and_drops_duplicates(example):
    chosen = select(example, ["lab5", "mlu", "lab2", "everything"])
    assert [h.name for h in chosen] == ["lab5", "lab1", "lab2", "lab3", "lab4"]
    # Comma-separated lists and ranges are accepted as typed on the command line.
    assert [h.name for h in select(example, ["lab[3-4],all-ascend", "lab3"])] == ["lab3", "lab4", "lab5"]
    assert select(example, []) == []


def test_names_the_inventory_does_not_know_are_ssh_destinations_with_the_defaults(example):
    notes: list[str] = []
    chosen = select(example, ["lab1", "root@10.9.9.9", "gpu-box", "node[09-10]"], warn=notes.append)
    assert [(h.name, h.ssh, h.defined_at) for h in chosen] == [
        ("lab1", "lab1.lab.example", example.hosts["lab1"].defined_at),
        ("root@10.9.9.9", "root@10.9.9.9", None),
        ("gpu-box", "gpu-box", None),
        ("node09", "node09", None),  # a range: node01..03 are in the inventory, these are not
        ("node10", "node10", None),
    ]
    adhoc = chosen[2]
    assert (adhoc.data_dir, adhoc.fetch, adhoc.root, adhoc.env) == ("/data/envctl", "remote", "/", {"HF_ENDPOINT": "https://hf-mirror.com"})
    assert notes == []


def test_an_unknown_name_spelled_like_a_group_is_noted_not_refused(example, tmp_path):
    notes: list[str] = []
    chosen = select(example, ["mlx", "everythin", "lab6"], warn=notes.append)
    assert [h.ssh for h in chosen] == ["mlx", "everythin", "lab6"]
    file = tmp_path / "inventory.yaml"
    assert notes == [
        f"'mlx' is not a host or group of {file} (did you mean 'mlu'?); using it as an SSH destination",
        f"'everythin' is not a host or group of {file} (did you mean 'everything'?); using it as an SSH destination",
    ]
    select(example, ["mlx"])  # without a warn callback the note is simply dropped


def test_the_default_ssh_template_does_not_rewrite_a_typed_destination(tmp_path):
    inventory = load_inventory(write(tmp_path, "defaults:\n  ssh: '{name}.lab'\nhosts:\n  a:\n"), {})
    assert [h.ssh for h in select(inventory, ["a", "root@10.0.0.1"])] == ["a.lab", "root@10.0.0.1"]


@pytest.mark.parametrize("typed, message", [
    ("lab[4-1]", "host 'lab[4-1]': bad range '[4-1]': 4-1 counts down (write 1-4)"),
    ("-oProxyCommand=evil", "host '-oProxyCommand=evil' starts with '-': that is not an SSH destination"),
    ("lab 1", "host 'lab 1' contains a space: that is not an SSH destination"),
])
def test_selection_refuses_what_ssh_cannot_take(example, typed, message):
    with pytest.raises(EnvctlError) as caught:
        select(example, [typed])
    assert (caught.value.message, caught.value.exit_code) == (message, EXIT_USAGE)


def test_brackets_of_ipv6_and_ssh_uris_are_not_ranges():
    chosen = select(Inventory(), ["ssh://root@[fe80::1]:2222", "root@[::1]"])
    assert [h.ssh for h in chosen] == ["ssh://root@[fe80::1]:2222", "root@[::1]"]


def test_without_an_inventory_every_name_is_a_destination_with_envctl_defaults(tmp_path):
    inventory = load_inventory(None, {"HOME": str(tmp_path / "home")})
    assert inventory == Inventory()
    notes: list[str] = []
    chosen = select(inventory, ["lab1,lab[2-3]"], warn=notes.append)
    assert chosen == [HostEntry(name=n, ssh=n) for n in ("lab1", "lab2", "lab3")]
    assert chosen[0].fetch == "remote" and chosen[0].root == "/" and chosen[0].data_dir is None
    assert notes == []


# ---------------------------------------------------------------------------- where the file is


def test_the_explicit_path_wins_then_envctl_inventory_then_xdg(tmp_path):
    xdg = write(tmp_path, "hosts: {from-xdg:}", "xdg/envctl/inventory.yaml")
    env_file = write(tmp_path, "hosts: {from-env:}", "env.yaml")
    explicit = write(tmp_path, "hosts: {from-arg:}", "arg.yaml")
    environ = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "ENVCTL_INVENTORY": str(env_file), "HOME": "/nonexistent"}
    assert inventory_path(explicit, environ) == explicit
    assert inventory_path(None, environ) == env_file
    assert inventory_path(None, {**environ, "ENVCTL_INVENTORY": ""}) == xdg
    assert list(load_inventory(str(explicit), environ).hosts) == ["from-arg"]
    assert list(load_inventory(None, environ).hosts) == ["from-env"]
    assert list(load_inventory(None, {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}).hosts) == ["from-xdg"]


def test_the_default_lies_under_home_config_and_is_optional(tmp_path):
    home = tmp_path / "home"
    assert inventory_path(None, {"HOME": str(home)}) is None
    default = write(tmp_path, "hosts: {lab1:}", "home/.config/envctl/inventory.yaml")
    assert inventory_path(None, {"HOME": str(home)}) == default
    # An empty XDG_CONFIG_HOME counts as unset, as the XDG spec says.
    assert inventory_path(None, {"HOME": str(home), "XDG_CONFIG_HOME": ""}) == default
    assert inventory_path(None, {"HOME": str(home), "XDG_CONFIG_HOME": str(tmp_path / "elsewhere")}) is None


def test_only_the_given_environ_is_consulted_for_home(tmp_path, monkeypatch):
    write(tmp_path, "hosts: {lab1:}", "realhome/.config/envctl/inventory.yaml")
    monkeypatch.setenv("HOME", str(tmp_path / "realhome"))
    monkeypatch.setenv("ENVCTL_INVENTORY", str(tmp_path / "realhome/.config/envctl/inventory.yaml"))
    assert inventory_path(None, {}) is None
    assert load_inventory(None, {}) == Inventory()
    # "~" expands with the environ's HOME, not the process's.
    fake = write(tmp_path, "hosts: {lab2:}", "fakehome/inv.yaml")
    assert inventory_path("~/inv.yaml", {"HOME": str(tmp_path / "fakehome")}) == fake
    assert inventory_path(None, {"ENVCTL_INVENTORY": "~/inv.yaml", "HOME": str(tmp_path / "fakehome")}) == fake


def test_a_named_inventory_that_is_missing_is_an_error_saying_where_the_name_came_from(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ManifestError) as caught:
        load_inventory(None, {"ENVCTL_INVENTORY": str(missing)})
    assert (str(caught.value), caught.value.hint) == (f"{missing}: file not found", "the inventory path comes from ENVCTL_INVENTORY")
    with pytest.raises(ManifestError) as caught:
        load_inventory(missing, {})
    assert caught.value.hint == "the inventory path comes from --inventory"
