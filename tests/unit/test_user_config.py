"""The user config file (envctl/user_config.py) and which mirror wins where (envctl/mirror_routes.py)."""

from pathlib import Path

import pytest

from envctl import mirror_routes
from envctl.errors import ManifestError
from envctl.mirror_routes import HostLayer, rewrite, routes
from envctl.user_config import Mirrors, config_path, environ_defaults, load, over

GOOD = """\
mirrors:
  huggingface: https://hf-mirror.com/
  modelscope: https://modelscope.example.cn
  git:
    "https://github.com/": "https://gitee.com/mirrors/"
    "https://github.com/THUDM/": "http://git.lab/thudm/"
  registries: {"quay.io": "m.daocloud.io/quay.io", "docker.io": "docker.m.daocloud.io"}
  pip: https://pypi.tuna.tsinghua.edu.cn/simple
"""


def _write(tmp_path: Path, text: str) -> dict:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return {"ENVCTL_CONFIG": str(path), "HOME": str(tmp_path / "home")}


def test_the_issue_shape_is_read_with_where_each_setting_was_written(tmp_path):
    config = load(_write(tmp_path, GOOD))
    m = config.mirrors
    assert m.huggingface == "https://hf-mirror.com"  # an endpoint: joined with paths, no trailing slash
    assert m.modelscope == "https://modelscope.example.cn"
    assert m.git == {"https://github.com/": "https://gitee.com/mirrors/", "https://github.com/THUDM/": "http://git.lab/thudm/"}
    assert m.registries == {"quay.io": "m.daocloud.io/quay.io", "docker.io": "docker.m.daocloud.io"}
    assert m.pip == "https://pypi.tuna.tsinghua.edu.cn/simple"
    f = str(tmp_path / "config.yaml")
    assert m.origins["huggingface"] == f"{f}:2"
    assert m.origins["git https://github.com/THUDM/"] == f"{f}:6"
    assert m.origins["registries docker.io"] == f"{f}:7"
    assert m.origins["pip"] == f"{f}:8"
    assert environ_defaults(m) == {"HF_ENDPOINT": "https://hf-mirror.com", "MODELSCOPE_ENDPOINT": "https://modelscope.example.cn",
                                   "PIP_INDEX_URL": "https://pypi.tuna.tsinghua.edu.cn/simple"}


def test_where_the_file_is_found(tmp_path):
    home = tmp_path / "home"
    assert config_path({"HOME": str(home)}) is None  # none: envctl works without one
    assert load({"HOME": str(home)}).mirrors == Mirrors()
    default = home / ".config" / "envctl" / "config.yaml"
    default.parent.mkdir(parents=True)
    default.write_text("mirrors: {pip: 'http://pip.lab/simple'}\n")
    assert config_path({"HOME": str(home)}) == default
    xdg = tmp_path / "xdg"
    (xdg / "envctl").mkdir(parents=True)
    (xdg / "envctl" / "config.yaml").write_text("")
    assert config_path({"HOME": str(home), "XDG_CONFIG_HOME": str(xdg)}) == xdg / "envctl" / "config.yaml"
    assert load({"HOME": str(home), "XDG_CONFIG_HOME": str(xdg)}).mirrors == Mirrors()  # an empty file is no mirrors
    assert config_path({"HOME": str(home), "ENVCTL_CONFIG": "~/mine.yaml"}) == home / "mine.yaml"


def test_a_named_file_that_is_missing_or_a_directory_is_an_error(tmp_path):
    with pytest.raises(ManifestError) as missing:
        load({"ENVCTL_CONFIG": str(tmp_path / "nope.yaml")})
    assert "nope.yaml: file not found" in missing.value.message and "ENVCTL_CONFIG" in missing.value.hint
    (tmp_path / "home" / ".config" / "envctl" / "config.yaml").mkdir(parents=True)
    with pytest.raises(ManifestError) as directory:
        load({"HOME": str(tmp_path / "home")})
    assert "is a directory" in directory.value.message


def test_every_problem_of_a_bad_file_is_reported_at_its_line(tmp_path):
    env = _write(tmp_path, """\
mirrors:
  huggingface: hf-mirror.com
  modelscope: 42
  hf: https://hf-mirror.com
  git: [https://github.com/]
  registries:
    "https://quay.io": m.daocloud.io/quay.io
    docker.io: https://docker.m.daocloud.io
  pip: ftp://pip.lab/simple
proxies: {}
""")
    with pytest.raises(ManifestError) as caught:
        load(env)
    f = env["ENVCTL_CONFIG"]
    assert caught.value.exit_code == 3
    assert caught.value.message.splitlines() == [
        f"{f}:2:16: mirrors.huggingface: expected an http(s):// URL, got 'hf-mirror.com' (did you mean 'https://hf-mirror.com'?)",
        f"{f}:3:15: mirrors.modelscope: expected an http(s):// URL, got a number",
        f"{f}:4:3: mirrors.hf: unknown mirror 'hf'; mirrors: huggingface, modelscope, git, registries, pip",
        f"{f}:5:8: mirrors.git: expected a mapping (URL prefix → replacement prefix), got a list",
        f"{f}:7:5: mirrors.registries.https://quay.io: 'https://quay.io' is not a registry host (as an image "
        f"reference names it: quay.io, docker.io, registry.example:5000)",
        f"{f}:8:16: mirrors.registries.docker.io: 'https://docker.m.daocloud.io': a mirror is a repository prefix as "
        f"images are named (m.daocloud.io/quay.io), without a scheme: write 'docker.m.daocloud.io'",
        f"{f}:9:8: mirrors.pip: expected an http(s):// URL, got 'ftp://pip.lab/simple'",
        f"{f}:10:1: proxies: unknown section 'proxies'; sections: mirrors",
    ]


@pytest.mark.parametrize("text, message", [
    ("- mirrors\n", "the configuration is a mapping (mirrors:), got a list"),
    ("mirrors: [pip]\n", "expected a mapping of mirrors"),
    ("mirrors:\n  pip: https://\n", "'https://' names no host"),
    ("mirrors:\n  git: {'https://github.com/': ''}\n", "expected text (URL prefix → replacement prefix), got empty text"),
    ("mirrors:\n  pip: https://a/\n  pip: https://b/\n", "pip"),  # a duplicate key
    ("mirrors:\n  pip: [unclosed\n", ""),  # not YAML
])
def test_neighbours_of_a_bad_file_are_located_errors(tmp_path, text, message):
    env = _write(tmp_path, text)
    with pytest.raises(ManifestError) as caught:
        load(env)
    first = caught.value.message.splitlines()[0]
    assert first.startswith(env["ENVCTL_CONFIG"] + ":") and first.split(":")[1].isdigit()
    assert message in caught.value.message


@pytest.mark.parametrize("value, message", [
    ("''", "got empty text"),
    ("'a.io/x y'", "'x y' cannot be part of a repository name"),
    ("'m.daocloud.io/Quay.io'", "'Quay.io' cannot be part of a repository name"),  # Docker: "must be lowercase"
    ("'m.daocloud.io//quay.io'", "'' cannot be part of a repository name"),
    ("'m.daocloud.io/quay.io:v1'", "cannot be part of a repository name"),  # a tag is no prefix
    ("'mirror/quay.io'", "Docker reads 'mirror' as a Docker Hub namespace"),
    ("'daocloud'", "Docker reads 'daocloud' as a Docker Hub namespace"),
    ("'bad_host.io/quay.io'", "'bad_host.io' is not a registry host"),
    ("'https://docker.m.daocloud.io/'", "without a scheme: write 'docker.m.daocloud.io'"),
    ("'robot:s3cret@m.lab.cn/quay.io'", "'***@m.lab.cn/quay.io': an image name holds no credentials; "
                                          "log in with `docker login m.lab.cn`"),
    ("'https://robot:s3cret@m.lab.cn/quay.io'", "without a scheme: write 'm.lab.cn/quay.io'"),
])
def test_a_registry_mirror_is_a_prefix_docker_can_pull_from(tmp_path, value, message):
    """The pulled name is PREFIX/REPOSITORY: a prefix Docker would refuse or read as a Docker Hub
    namespace (distribution/reference: lower-case path components; a host has '.' or ':PORT' or
    is localhost) is refused where it is written, and credentials are never echoed."""
    env = _write(tmp_path, f"mirrors:\n  registries: {{quay.io: {value}}}\n")
    with pytest.raises(ManifestError) as caught:
        load(env)
    assert caught.value.message.startswith(f"{env['ENVCTL_CONFIG']}:2:"), caught.value.message
    assert message in caught.value.message and "s3cret" not in caught.value.message, caught.value.message


def test_registry_hosts_are_one_key_each_as_docker_normalises_them(tmp_path):
    """Host names compare in lower case and index.docker.io / registry-1.docker.io are docker.io:
    two spellings of one registry are refused (which would win was the order of the file), a
    trailing slash of a prefix is dropped, and a host's inventory entry replaces this machine's
    whatever its spelling."""
    env = _write(tmp_path, "mirrors:\n  registries: {docker.io: a.io, index.docker.io: b.io, Quay.IO: c.io, quay.io: d.io}\n")
    with pytest.raises(ManifestError) as caught:
        load(env)
    lines = caught.value.message.splitlines()
    assert len(lines) == 2, lines
    assert "'index.docker.io' is the registry 'docker.io' again" in lines[0]
    assert "'quay.io' is the registry 'Quay.IO' again" in lines[1]
    env = _write(tmp_path, "mirrors:\n  registries: {Quay.IO: 'm.daocloud.io/quay.io/', registry-1.docker.io: 'localhost:5000'}\n")
    mirrors = load(env).mirrors
    assert mirrors.registries == {"quay.io": "m.daocloud.io/quay.io", "docker.io": "localhost:5000"}
    assert mirrors.origins["registries quay.io"].endswith("config.yaml:2")
    host = Mirrors(registries={"quay.io": "lab.mirror.cn/quay"})
    assert over(mirrors, host).registries["quay.io"] == "lab.mirror.cn/quay"


def test_a_password_in_a_mirror_url_is_never_in_a_message(tmp_path):
    env = _write(tmp_path, "mirrors:\n  pip: ftp://user:s3cret@pip.lab/simple\n")
    with pytest.raises(ManifestError) as caught:
        load(env)
    assert "s3cret" not in caught.value.message and "user:***@pip.lab" in caught.value.message


def test_the_longest_prefix_wins_as_in_git():
    rules = {"https://github.com/": "https://gitee.com/mirrors/", "https://github.com/THUDM/": "http://git.lab/thudm/",
             "ssh://git@github.com/": "https://gitee.com/mirrors/"}
    assert rewrite("https://github.com/THUDM/ChatGLM3.git", rules) == ("http://git.lab/thudm/ChatGLM3.git", "https://github.com/THUDM/")
    assert rewrite("https://github.com/hiyouga/LLaMA-Factory", rules) == \
        ("https://gitee.com/mirrors/hiyouga/LLaMA-Factory", "https://github.com/")
    assert rewrite("https://gitlab.com/x/y", rules) is None
    assert rewrite("https://github.comx/y", {"https://github.com/": "z/"}) is None
    # the user in an ssh URL is part of the match; a password never is, nor does it travel on
    assert rewrite("ssh://git@github.com/a/b", rules) == ("https://gitee.com/mirrors/a/b", "ssh://git@github.com/")
    assert rewrite("https://me:TOKEN@github.com/a/b", rules) == ("https://gitee.com/mirrors/a/b", "https://github.com/")


def _config(tmp_path, text=GOOD):
    return load(_write(tmp_path, text))


def test_environment_variables_win_over_the_file(tmp_path):
    config = _config(tmp_path)
    f = str(config.path)
    r = routes(config, {"HF_ENDPOINT": "http://127.0.0.1:9/", "HF_TOKEN": "t"})
    assert r.endpoints["huggingface"] == mirror_routes.Route("http://127.0.0.1:9", "environment variable HF_ENDPOINT")
    assert r.endpoints["modelscope"] == mirror_routes.Route("https://modelscope.example.cn", f"{f}:3")
    assert r.environ["HF_ENDPOINT"] == "http://127.0.0.1:9" and r.environ["HF_TOKEN"] == "t"
    assert r.environ["MODELSCOPE_ENDPOINT"] == "https://modelscope.example.cn"
    # MODELSCOPE_DOMAIN is the environment's choice too (the modelscope SDK reads it): it beats the file
    r = routes(config, {"MODELSCOPE_DOMAIN": "ms.lab"})
    assert r.endpoints["modelscope"].url == "https://ms.lab" and r.environ["MODELSCOPE_ENDPOINT"] == "https://ms.lab"
    r = routes(config, {"PIP_INDEX_URL": "http://devpi.lab/root/simple/"})
    assert r.endpoints["pip"] == mirror_routes.Route("http://devpi.lab/root/simple/", "environment variable PIP_INDEX_URL")


@pytest.mark.parametrize("variable, value, message", [
    ("HF_ENDPOINT", "hf-mirror.com", "got 'hf-mirror.com' (did you mean 'https://hf-mirror.com'?)"),
    ("HF_ENDPOINT", "127.0.0.1:8080", "did you mean 'https://127.0.0.1:8080'?"),
    ("HF_ENDPOINT", " ", "got ' '"),
    ("MODELSCOPE_ENDPOINT", "ftp://ms.lab", "got 'ftp://ms.lab'"),
    ("MODELSCOPE_DOMAIN", "https://", "names no host"),
    ("PIP_INDEX_URL", "file:///wheels", "got 'file:///wheels'"),  # a pip mirror is configured: it would override it
    ("HF_ENDPOINT", "http://me:s3cret@", "'http://me:***@' names no host"),
])
def test_an_endpoint_variable_is_checked_as_the_file_is(tmp_path, variable, value, message):
    """The environment's endpoint wins over the file's, so it is checked as the file's values are:
    said at once with the variable's name (exit 2), never left to fail each download."""
    from envctl.errors import EnvctlError

    config = _config(tmp_path)
    with pytest.raises(EnvctlError) as caught:
        routes(config, {variable: value})
    assert caught.value.exit_code == 2
    assert caught.value.message.startswith(f"environment variable {variable}: ") and message in caught.value.message
    assert "s3cret" not in caught.value.message
    with pytest.raises(EnvctlError) as caught:  # a host's inventory env likewise, named as such
        routes(config, {}, HostLayer("lab1", Mirrors(), {variable: value}))
    assert caught.value.message.startswith(f"inventory env {variable} (host lab1): ")


def test_the_callers_own_pip_index_is_not_checked_without_a_pip_mirror(tmp_path):
    """PIP_INDEX_URL alone is about pip on the caller's machine (a file:// index is pip's to take)."""
    config = _config(tmp_path, "mirrors: {}\n")
    assert "pip" not in routes(config, {"PIP_INDEX_URL": "file:///wheels"}).endpoints
    assert routes(config, {"HF_ENDPOINT": ""}).endpoints == {}  # an empty variable is an unset one


def test_no_file_and_no_variables_is_the_public_services(tmp_path):
    r = routes(load({"HOME": str(tmp_path)}), {"PATH": "/bin"})
    assert r.endpoints == {} and r.git == {} and r.registries == {} and r.environ == {"PATH": "/bin"}


def test_a_hosts_own_mirrors_and_env_win_over_this_machines(tmp_path):
    config = _config(tmp_path)
    f = str(config.path)
    host = HostLayer("lab1", Mirrors(huggingface="http://10.0.0.2:8080", git={"https://github.com/": "http://10.0.0.2/git/"},
                                     registries={"quay.io": "10.0.0.2:5000/quay"},
                                     origins={"huggingface": "/inv.yaml:7", "git https://github.com/": "/inv.yaml:8",
                                              "registries quay.io": "/inv.yaml:9"}))
    r = routes(config, {"HF_ENDPOINT": "https://hf-mirror.com"}, host)
    assert r.endpoints["huggingface"] == mirror_routes.Route("http://10.0.0.2:8080", "inventory /inv.yaml:7 (host lab1)")
    assert r.endpoints["modelscope"].origin == f"{f}:3"  # the host says nothing of it: this machine's
    assert r.git["https://github.com/"] == mirror_routes.Route("http://10.0.0.2/git/", "inventory /inv.yaml:8 (host lab1)")
    assert r.git["https://github.com/THUDM/"].origin == f"{f}:6"  # merged prefix by prefix
    assert r.registries["quay.io"].url == "10.0.0.2:5000/quay" and r.registries["docker.io"].url == "docker.m.daocloud.io"
    assert r.environ["HF_ENDPOINT"] == "http://10.0.0.2:8080"
    # the host's inventory env is the most specific of all
    r = routes(config, {}, HostLayer("lab1", host.mirrors, {"HF_ENDPOINT": "http://10.0.0.3"}))
    assert r.endpoints["huggingface"] == mirror_routes.Route("http://10.0.0.3", "inventory env HF_ENDPOINT (host lab1)")


def test_over_merges_kind_by_kind():
    low = Mirrors(huggingface="https://a", git={"x/": "y/"}, pip="https://p", origins={"huggingface": "f:1", "git x/": "f:2", "pip": "f:3"})
    high = Mirrors(huggingface="https://b", git={"z/": "w/"}, origins={"huggingface": "g:1", "git z/": "g:2"})
    merged = over(low, high)
    assert (merged.huggingface, merged.pip, merged.git) == ("https://b", "https://p", {"x/": "y/", "z/": "w/"})
    assert merged.origins == {"huggingface": "g:1", "git x/": "f:2", "git z/": "g:2", "pip": "f:3"}


def test_the_callers_pip_index_is_no_mirror_without_a_configured_one(tmp_path):
    r = routes(load({"HOME": str(tmp_path)}), {"PIP_INDEX_URL": "http://127.0.0.1:3141/simple"})
    assert "pip" not in r.endpoints
    r = routes(_config(tmp_path, "mirrors: {pip: 'https://pypi.lab/simple'}\n"), {"PIP_INDEX_URL": "http://127.0.0.1:3141/simple"})
    assert r.endpoints["pip"] == mirror_routes.Route("http://127.0.0.1:3141/simple", "environment variable PIP_INDEX_URL")


def test_inventory_mirrors_per_host_over_its_defaults(tmp_path):
    from envctl.remote.inventory import load_inventory

    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("""\
defaults:
  mirrors:
    huggingface: http://10.0.0.2:8080
    git: {"https://github.com/": "http://10.0.0.2/git/"}
hosts:
  lab1:
    mirrors:
      modelscope: http://10.0.0.3/
      git: {"https://github.com/THUDM/": "http://10.0.0.3/thudm/"}
  lab2: {mirrors: null}
  lab3: {}
""")
    hosts = load_inventory(inventory, {"HOME": str(tmp_path)}).hosts
    lab1, lab2, lab3 = hosts["lab1"].mirrors, hosts["lab2"].mirrors, hosts["lab3"].mirrors
    assert (lab1.huggingface, lab1.modelscope) == ("http://10.0.0.2:8080", "http://10.0.0.3")
    assert lab1.git == {"https://github.com/": "http://10.0.0.2/git/", "https://github.com/THUDM/": "http://10.0.0.3/thudm/"}
    assert lab1.origins["huggingface"] == f"{inventory}:3" and lab1.origins["modelscope"] == f"{inventory}:8"
    assert lab2 == Mirrors()  # null: this machine's mirrors only
    assert lab3.huggingface == "http://10.0.0.2:8080"


@pytest.mark.parametrize("url, shown", [
    ("https://user:s3cret@pip.lab/simple", "https://user:***@pip.lab/simple"),
    ("https://Gq7Lk2Pz9Xw4Rt5Yu8Io1@pypi.fury.io/acme/", "https://***@pypi.fury.io/acme/"),  # a token as the user (Gemfury)
    ("https://Gq7Lk2Pz9Xw4Rt5Yu8Io1:@packagecloud.io/acme/repo/pypi/simple", "https://***@packagecloud.io/acme/repo/pypi/simple"),
    ("https://pypi.tuna.tsinghua.edu.cn/simple", "https://pypi.tuna.tsinghua.edu.cn/simple"),
])
def test_a_mirror_is_shown_without_its_credentials(url, shown):
    """What `envctl config`, plans and messages show of a mirror (user_config.shown_url)."""
    from envctl.user_config import shown_url

    assert shown_url(url) == shown


@pytest.mark.parametrize("written, said", [
    # Python cannot split these: an internal error (a traceback) before, at `envctl config` or any download.
    ("https://[::1/simple", "'https://[::1/simple' is not a URL: Invalid IPv6 URL"),
    ("https://Gq7Lk2Pz9Xw4Rt5Yu8Io1@pip.lab:8o8o/simple", "'https://***@pip.lab:8o8o/simple' is not a URL: its port is not a "
                                                          "number (a '#', '?' or '/' in a password or token must be "
                                                          "percent-encoded: %23, %3F, %2F)"),
    # A '#' in the password: Python ends the host there and reads the password's start as the port.
    ("https://lab:Gq7Lk2Pz9Xw4#Rt5Yu8Io1@pip.lab/simple", "'https://***@pip.lab/simple' is not a URL: its port is not a "
                                                         "number (a '#', '?' or '/' in a password or token must be "
                                                         "percent-encoded: %23, %3F, %2F)"),
    # A misspelt scheme: meant as an http(s) URL, whose user alone is a token (Gemfury's form).
    ("htps://Gq7Lk2Pz9Xw4Rt5Yu8Io1@pypi.fury.io/acme/", "expected an http(s):// URL, got 'htps://***@pypi.fury.io/acme/'"),
    ("git+https://Gq7Lk2Pz9Xw4Rt5Yu8Io1:@pypi.fury.io/acme/", "expected an http(s):// URL, got 'git+https://***@pypi.fury.io/acme/'"),
    ("https//Gq7Lk2Pz9Xw4Rt5Yu8Io1@pypi.fury.io/acme/", "expected an http(s):// URL, got 'https//***@pypi.fury.io/acme/' "
                                                "(did you mean 'https://https//***@pypi.fury.io/acme/'?)"),
])
def test_a_mirror_url_that_cannot_be_one_is_said_without_its_credential(tmp_path, written, said):
    env = _write(tmp_path, f"mirrors:\n  pip: '{written}'\n")
    with pytest.raises(ManifestError) as caught:
        load(env)
    assert caught.value.message.endswith(f"mirrors.pip: {said}") and "Gq7Lk2Pz9Xw4" not in caught.value.message
