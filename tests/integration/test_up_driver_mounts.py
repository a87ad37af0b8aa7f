"""`up` on simulated Ascend hosts: the container gets the driver paths the host has, where the
host has them (npu-smi in /usr/local/sbin on standard driver installs; driver/tools with
hccn_tool, driver/topo for HCCL, /etc/hccn.conf), read-only, and nothing the host lacks."""

from support import IMAGE


def npu_env(make_env, tarballs, **host):
    env = make_env("npu", cards=2, **host)
    env.write(f"""\
        device: {{kind: npu, cards: 1, driver: ">=23.0.rc1"}}
        image: {{ref: {IMAGE}, tarball: {{source: {tarballs.plain}}}}}
        """)
    done = env.run("up", str(env.manifest))
    assert done.returncode == 0, done.stderr
    return env


def test_the_container_gets_sbin_npu_smi_tools_topo_and_hccn_conf_read_only(make_env, tarballs, no_image):
    env = npu_env(make_env, tarballs, npu_smi_dir="usr/local/sbin", driver_extras=True)
    code, out = env.inside("/usr/local/sbin/npu-smi info | head -2 | tail -1")
    assert code == 0 and "npu-smi 23.0.rc2" in out
    code, out = env.inside("/usr/local/Ascend/driver/tools/hccn_tool -i 0 -ip -g")
    assert (code, out.strip()) == (0, "hccn_tool -i 0 -ip -g")
    assert env.inside("cat /usr/local/Ascend/driver/topo/950/atlas_950_1.json")[1].strip() == "{}"
    assert env.inside("grep -c address_0 /etc/hccn.conf")[1].strip() == "1"
    for path in ("/usr/local/sbin/npu-smi", "/usr/local/Ascend/driver/topo/950/atlas_950_1.json", "/etc/hccn.conf",
                 "/usr/local/Ascend/driver/tools/hccn_tool"):
        assert env.inside(f"echo x >> {path}")[0] != 0, f"{path} is writable"
    assert env.inside("test -e /usr/local/bin/npu-smi")[0] != 0


def test_a_host_without_them_mounts_none_of_them(make_env, tarballs, no_image):
    env = npu_env(make_env, tarballs)
    for path in ("/usr/local/sbin/npu-smi", "/usr/local/Ascend/driver/tools", "/usr/local/Ascend/driver/topo",
                 "/etc/hccn.conf"):
        assert env.inside(f"test -e {path}")[0] != 0, f"{path} exists in the container"
    assert env.inside("test -x /usr/local/bin/npu-smi")[0] == 0
