"""The way to a host through its bastions (envctl/remote/ssh_hops.py), read from ssh configs by the
system's OpenSSH itself (`ssh -G`, which connects nowhere). The same hops against real sshd
servers are in tests/remote/test_every_hop.py.

ProxyJump semantics checked here are OpenSSH's (openssh-portable readconf.c parse_jump, ssh.c):
`ProxyJump a,b` reaches b through a and ignores b's own ProxyJump; `none` is a direct
connection; a ProxyCommand given first wins over a ProxyJump of the config.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from envctl.remote.ssh_hops import (
    POLICY,
    JumpSpec,
    RouteError,
    describe,
    hop_refusing_login,
    parse_jump,
    parse_jump_list,
    refusing_hop,
    known_hosts_paths,
    resolve_route,
    ssh_w_proxy_command,
)


@pytest.mark.parametrize("spec, expected", [
    ("bastion", JumpSpec("bastion")),
    ("alice@bastion:2222", JumpSpec("bastion", "alice", 2222)),
    ("ssh://bob@b2.example.org:2200", JumpSpec("b2.example.org", "bob", 2200)),
    ("ssh://bob;fingerprint=x@b2/", JumpSpec("b2", "bob")),
    ("[fe80::1]:23", JumpSpec("fe80::1", None, 23)),
    ("carol@[2001:db8::7]", JumpSpec("2001:db8::7", "carol")),
    ("a@b@host", JumpSpec("host", "a@b")),  # OpenSSH splits at the last '@'
])
def test_jump_specs_as_openssh_reads_them(spec, expected):
    assert parse_jump(spec) == expected


def test_a_jump_list_first_hop_first_and_none_is_no_jump():
    assert parse_jump_list("a,u@b:2") == [JumpSpec("a"), JumpSpec("b", "u", 2)]
    assert parse_jump_list("none") == parse_jump_list(None) == []
    with pytest.raises(RouteError, match="port 'x' is not a number"):
        parse_jump_list("a:x")


def write(tmp_path: Path, text: str, name: str = "ssh_config") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def names(route):
    return [(hop.name, hop.user, hop.port) for hop in route.chain()]


def test_a_chain_reaches_its_last_hop_through_the_others_and_the_first_follows_its_own_config(tmp_path):
    config = write(tmp_path, """\
Host target
  HostName 10.0.0.5
  ProxyJump alice@b1:2222,ssh://bob@b2:2200
Host b2
  ProxyJump ignored-because-the-chain-says-b1
Host b1
  HostName 10.0.0.1
  ProxyJump b0
Host b0
  HostName 10.0.0.250
""")
    route = resolve_route("target", config, own_known_hosts="/tmp/own")
    assert names(route) == [("target", None, None), ("b2", "bob", 2200), ("b1", "alice", 2222), ("b0", None, None)]
    hops = list(route.chain())
    assert [hop.key_name for hop in hops] == ["10.0.0.5", "[b2]:2200", "[10.0.0.1]:2222", "10.0.0.250"]
    assert describe(hops[2], route) == "jump host b1 (10.0.0.1:2222) on the way to target"
    assert describe(route, route) == "target (10.0.0.5)"


def test_proxyjump_none_and_a_host_without_jump_are_direct(tmp_path):
    config = write(tmp_path, "Host direct\n  ProxyJump none\nHost * !bastion\n  ProxyJump bastion\n")
    assert resolve_route("direct", config).via is None
    assert [hop.name for hop in resolve_route("other", config).chain()][1] == "bastion"


# The old bastion form, before ProxyJump (OpenSSH 7.3), as lab guides and configs still write it:
# `ProxyCommand ssh -W %h:%p jump-host` (mynw.cn "SSH代理命令ProxyCommand连接嵌套服务器",
# ssh_config(5) ProxyCommand's own example uses nc), the host before the options, -q, -i per hop,
# and the policy relaxed inside the command itself.
@pytest.mark.parametrize("command, spec, config, options, chain", [
    ("ssh -W %h:%p jump-host", JumpSpec("jump-host"), None, (), []),
    ("ssh jump -W %h:%p", JumpSpec("jump"), None, (), []),
    ("exec ssh -q -W [%h]:%p ops@bastion", JumpSpec("bastion", "ops"), None, (), []),
    ("/usr/bin/ssh -qW%h:%p -p 2222 -l ops -i ~/.ssh/id_bastion bastion",
     JumpSpec("bastion", "ops", 2222), None, ("IdentityFile=~/.ssh/id_bastion",), []),
    ("ssh -o StrictHostKeyChecking=no -o 'UserKnownHostsFile /dev/null' -4 -W %h:%p -- bastion",
     JumpSpec("bastion"), None, ("StrictHostKeyChecking=no", "UserKnownHostsFile /dev/null", "AddressFamily=inet"), []),
    ("ssh -F /etc/lab/ssh_config -J a,u@b:2200 -W %h:%p c", JumpSpec("c"), "/etc/lab/ssh_config", (),
     [JumpSpec("a"), JumpSpec("b", "u", 2200)]),
    ("ssh -W %h:%p ssh://ops@[2001:db8::7]:2222", JumpSpec("2001:db8::7", "ops", 2222), None, (), []),
    # a path with a space stays one value when handed on as -o (ssh_config splits at spaces)
    ("ssh -i '/keys/lab key' -W %h:%p b", JumpSpec("b"), None, ('IdentityFile="/keys/lab key"',), []),
])
def test_an_ssh_w_proxycommand_is_read_as_a_jump(command, spec, config, options, chain):
    jump = ssh_w_proxy_command(command)
    assert (jump.spec, jump.config, jump.options, jump.chain) == (spec, config, options, chain)


@pytest.mark.parametrize("command", [
    "nc -X 5 -x proxy:1080 %h %p",
    "ssh bastion nc %h %p",  # netcat on the bastion: a remote command, not -W
    "ssh -q bastion -W %h:22",  # a fixed port: not the hop ssh is given
    "ssh -W %h:%p %r@bastion",  # the outer ssh's tokens in the host
    "ssh -W %h:%p bastion 2>/dev/null",  # shell syntax
    "ssh -S ~/.ssh/cm -W %h:%p bastion",  # a flag envctl does not read
    "ssh -o ProxyCommand='nc proxy 1080' -W %h:%p bastion",
    "ssh -W %h:%p 2001:db8::7",  # ssh reads no port there; left to ssh
    "aws ssm start-session --target %h",
    "none",
])
def test_other_proxycommands_are_not_read_as_a_jump(command):
    assert ssh_w_proxy_command(command) is None


def test_an_old_style_bastion_is_a_hop_held_to_the_policy_with_its_options_kept(tmp_path):
    """`Host *` relaxing everything (as many lab guides write it) and the bastion reached by an
    `ssh -W` ProxyCommand: the bastion is a hop with envctl's policy first, its own identity,
    user and port kept, and its /dev/null known_hosts replaced."""
    config = str(tmp_path / "ssh_config")
    write(tmp_path, f"""\
Host gpu*
  HostName 10.8.0.11
  User alice
  ProxyCommand ssh -F {config} -q -i ~/.ssh/id_bastion -o UserKnownHostsFile=/dev/null -W %h:%p -l ops -p 2222 bastion
Host bastion
  HostName 203.0.113.9
Host *
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
""")
    route = resolve_route("gpu1", config, own_known_hosts=str(tmp_path / "own"))
    assert names(route) == [("gpu1", None, None), ("bastion", "ops", 2222)]
    bastion = route.via
    assert bastion.config == config  # the config the ProxyCommand's ssh reads (-F; else OpenSSH's default)
    assert bastion.hostname == "203.0.113.9" and bastion.key_name == "[203.0.113.9]:2222"
    assert bastion.known_hosts == (str(tmp_path / "own"),) and bastion.replaced_known_hosts
    [option] = [arg for arg in route.route_options() if arg.startswith("ProxyCommand=")]
    argv = unwrap(option[len("ProxyCommand="):])
    assert argv[:3] == ["ssh", "-F", config] and argv[-4:] == ["-W", "[H]:22", "--", "bastion"]
    pairs = [argv[i + 1] for i, arg in enumerate(argv) if arg == "-o"]
    for policy in POLICY:  # first: for ssh, the first value of an option wins
        assert pairs.index(policy) < pairs.index("UserKnownHostsFile=/dev/null")
    assert pairs.index(f"UserKnownHostsFile={tmp_path}/own") < pairs.index("UserKnownHostsFile=/dev/null")
    assert "IdentityFile=~/.ssh/id_bastion" in pairs and argv[argv.index("-l") + 1] == "ops"
    assert argv[argv.index("-p") + 1] == "2222"


def test_a_users_proxycommand_is_left_as_written(tmp_path):
    config = write(tmp_path, "Host behind\n  ProxyCommand nc -X 5 -x proxy:1080 %h %p\n")
    route = resolve_route("behind", config)
    assert route.via is None and route.settings["proxycommand"] == "nc -X 5 -x proxy:1080 %h %p"
    assert route.route_options() == []


def test_match_and_include_are_read_as_ssh_reads_them(tmp_path):
    included = write(tmp_path, "Match originalhost bastion\n  UserKnownHostsFile /dev/null\n"
                               "  StrictHostKeyChecking no\n", "bastion.conf")
    config = write(tmp_path, f"Include {included}\nHost inner\n  ProxyJump bastion\n"
                             f"Host *\n  UserKnownHostsFile {tmp_path}/known_hosts\n")
    route = resolve_route("inner", config, own_known_hosts=str(tmp_path / "own"))
    assert route.known_hosts == (f"{tmp_path}/known_hosts",) and not route.replaced_known_hosts
    assert route.via.known_hosts == (str(tmp_path / "own"),) and route.via.replaced_known_hosts
    assert route.via.known_hosts_options() == ["-o", f"UserKnownHostsFile={tmp_path}/own"]


def test_known_hosts_files_with_a_space_in_their_path_stay_whole(tmp_path):
    """Several files on one line, /dev/null among them, one in quotes with a space, %-tokens:
    ssh -G prints them expanded and unquoted; each file is found whole."""
    (tmp_path / "team keys").mkdir()
    config = write(tmp_path, f'Host inner\n  ProxyJump bastion\n'
                             f'Host bastion\n  UserKnownHostsFile /dev/null "{tmp_path}/team keys/known_%h" ~/.ssh/kh\n')
    bastion = resolve_route("inner", config).via
    assert bastion.known_hosts[0] == f"{tmp_path}/team keys/known_bastion" and bastion.known_hosts[1].endswith("/.ssh/kh")
    assert bastion.replaced_known_hosts and len(bastion.known_hosts) == 2
    assert bastion.known_hosts_options()[1] == f'UserKnownHostsFile="{tmp_path}/team keys/known_bastion" {bastion.known_hosts[1]}'
    assert known_hosts_paths("~/.ssh/known_hosts ~/.ssh/known_hosts2") == ["~/.ssh/known_hosts", "~/.ssh/known_hosts2"]
    assert known_hosts_paths("%d/a b/kh /dev/null") == ["%d/a b/kh", "/dev/null"]


def test_a_loop_in_the_config_is_refused_with_the_chain(tmp_path):
    config = write(tmp_path, "Host a\n  ProxyJump b\nHost b\n  ProxyJump a\n")
    with pytest.raises(RouteError, match="loops: a -> b -> a"):
        resolve_route("a", config)


def test_a_config_ssh_refuses_is_reported_with_its_line(tmp_path):
    config = write(tmp_path, "Host a\n  NoSuchOption yes\n")
    with pytest.raises(RouteError, match="line 2: Bad configuration option"):
        resolve_route("a", config)


def unwrap(proxy_command: str) -> list[str]:
    """What a ProxyCommand runs after ssh expanded %h and %p (for host H, port 22)."""
    expanded = proxy_command.replace("%%", "\0").replace("%h", "H").replace("%p", "22").replace("\0", "%")
    return shlex.split(expanded)


def test_every_hop_gets_the_policy_however_deep_the_nesting(tmp_path):
    (tmp_path / "100% sure").mkdir()  # a % and a space in the config's path: literal in every hop
    config = write(tmp_path / "100% sure", "Host t\n  ProxyJump a,b,c\n")
    route = resolve_route("t", config)
    options = route.route_options()
    assert options[0] == "-o" and options[1].startswith("ProxyCommand=")
    command, depth = options[1][len("ProxyCommand="):], 0
    while command:
        argv = unwrap(command)
        depth += 1
        for option in POLICY:
            assert option in argv, argv
        assert argv[:3] == ["ssh", "-F", config] and argv[-4:-1] == ["-W", "[H]:22", "--"]
        inner = [arg for arg in argv if arg.startswith("ProxyCommand=")]
        command = inner[0][len("ProxyCommand="):] if inner else ""
    assert depth == 3  # c through b, b through a, a directly


def test_a_connect_timeout_of_the_config_is_kept_and_a_hop_without_one_gets_envctls(tmp_path):
    """A far bastion with `ConnectTimeout 90` keeps it; elsewhere 20 s, so a dead hop cannot hang a run."""
    config = write(tmp_path, "Host t\n  ProxyJump far\nHost far\n  ConnectTimeout 90\n")
    route = resolve_route("t", config)
    assert route.timeout_options() == ["-o", "ConnectTimeout=20"]
    assert route.via.timeout_options() == [] and "ConnectTimeout=20" not in route.route_options()[1]


@pytest.mark.parametrize("settings, interval, count", [
    ("", "10", "3"),  # none set: envctl's 10 s, OpenSSH's count of 3
    ("  ServerAliveCountMax 20\n", "10", "20"),  # the config's count kept
    ("  ServerAliveInterval 5\n", "5", "3"),  # shorter than envctl's: kept
    ("  ServerAliveInterval 60\n  ServerAliveCountMax 4\n", "10", "4"),  # the guides' 60 s: a dead host in 40 s, not 4 min
    ("  ServerAliveInterval 1m30s\n", "10", "3"),  # OpenSSH's time format
    ("  ServerAliveInterval 0\n", "10", "3"),  # 0: none
])
def test_a_dead_server_is_noticed_within_about_ten_keepalives_seconds_whatever_the_config(tmp_path, settings, interval,
                                                                                            count):
    """What ssh itself makes of envctl's options over the config's (`ssh -G`, the first value
    given wins): the config's interval when shorter than 10 s, its count always."""
    config = write(tmp_path, "Host t\n" + settings)
    route = resolve_route("t", config)
    done = subprocess.run(["ssh", "-G", "-F", str(config), *route.keepalive_options(), "t"], capture_output=True,
                          text=True, timeout=30)
    effective = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    assert (effective["serveraliveinterval"], effective["serveralivecountmax"]) == (interval, count), done.stderr


REFUSED_BASTION = """\
No ED25519 host key is known for 10.213.0.11 and you have requested strict checking.
Host key verification failed.
Connection closed by UNKNOWN port 65535
"""
PASSWORD_BASTION = "root@10.213.0.11: Permission denied (publickey,password).\r\nConnection closed by UNKNOWN port 65535\n"


def test_the_hop_named_in_opensshs_messages_is_found(tmp_path):
    config = write(tmp_path, "Host inner\n  HostName 10.213.1.13\n  ProxyJump bastion\n"
                             "Host bastion\n  HostName 10.213.0.11\n")
    route = resolve_route("inner", config)
    assert refusing_hop(route, REFUSED_BASTION) is route.via
    assert refusing_hop(route, "Host key for 10.213.1.13 has changed and you have requested strict checking.") is route
    assert hop_refusing_login(route, PASSWORD_BASTION) is route.via
    assert refusing_hop(route, "Connection refused") is None
