"""Variables in manifest strings, and artifact source parsing."""

import pytest

from envctl.artifacts.sources import SourceError, parse_source
from envctl.manifest.interpolate import Expander, expand_tree


def expand(data, vars=None, environ=None):
    problems = []
    expander = Expander(vars or {}, environ or {})
    out = expand_tree(data, expander, lambda path, message: problems.append((path, message)))
    return out, problems, expander.secrets


def test_vars_then_environment_then_default():
    out, problems, _ = expand(
        {"a": "${x}", "b": "${HOME_DIR}/models", "c": "${MISSING:-/data}", "d": "${EMPTY:-}"},
        vars={"x": "from-vars"}, environ={"HOME_DIR": "/home/u", "x": "from-env"},
    )
    assert out == {"a": "from-vars", "b": "/home/u/models", "c": "/data", "d": ""} and problems == []


def test_shell_variables_and_escapes_are_left_for_the_container():
    out, problems, _ = expand({"run": "python x.py --steps $MAX_STEPS --out $${OUT}"})
    assert out == {"run": "python x.py --steps $MAX_STEPS --out ${OUT}"} and problems == []


def test_an_unset_variable_is_an_error_not_an_empty_string():
    out, problems, _ = expand({"setup": [{"run": "cd ${WORK}"}]})
    assert problems == [(("setup", 0, "run"), "variable 'WORK' is not set: define it under vars, export it, or write ${WORK:-default}")]


def test_a_whole_reference_to_an_integer_becomes_an_integer():
    out, _, _ = expand({"cards": "${CARDS:-2}", "name": "card-${CARDS:-2}"})
    assert out == {"cards": 2, "name": "card-2"}


def test_values_of_secret_looking_variables_are_remembered_for_redaction():
    _, _, secrets = expand({"env": {"T": "${HF_TOKEN}", "P": "${FTP_PASSWORD}", "U": "${FTP_USER}"}},
                           environ={"HF_TOKEN": "hf_x", "FTP_PASSWORD": "pw", "FTP_USER": "lab"})
    assert secrets == {"hf_x", "pw"}


@pytest.mark.parametrize("text, kind, location, revision", [
    ("hf://THUDM/chatglm3-6b@e46a14881eae", "hf", "THUDM/chatglm3-6b", "e46a14881eae"),
    ("hf://datasets/FreedomIntelligence/evol-instruct-chinese@main", "hf-dataset", "FreedomIntelligence/evol-instruct-chinese", "main"),
    ("modelscope://ZhipuAI/chatglm3-6b@v1.0.0", "modelscope", "ZhipuAI/chatglm3-6b", "v1.0.0"),
    ("git+https://github.com/THUDM/ChatGLM3@35f21dda9f567", "git", "https://github.com/THUDM/ChatGLM3", "35f21dda9f567"),
    ("git+https://gitee.com/ascend/DeepSpeed.git@v0.9.2", "git", "https://gitee.com/ascend/DeepSpeed.git", "v0.9.2"),
    ("git+ssh://git@gitee.com/ascend/DeepSpeed.git@v0.9.2", "git", "ssh://git@gitee.com/ascend/DeepSpeed.git", "v0.9.2"),
    ("https://sdk.cambricon.com/static/Basis/MLU370_X86_ubuntu18.04/deepspeed_mlu-0.9.0-py3-none-any.whl", "http",
     "https://sdk.cambricon.com/static/Basis/MLU370_X86_ubuntu18.04/deepspeed_mlu-0.9.0-py3-none-any.whl", None),
    ("ftp://ftp.example.com/docker/a.tar.gz", "ftp", "ftp://ftp.example.com/docker/a.tar.gz", None),
    ("file:///nas/models/chatglm3-6b", "file", "/nas/models/chatglm3-6b", None),
    ("/nas/models/chatglm3-6b", "file", "/nas/models/chatglm3-6b", None),
])
def test_source_schemes(text, kind, location, revision):
    source = parse_source(text)
    assert (source.kind, source.location, source.revision) == (kind, location, revision)


def test_relative_paths_resolve_beside_the_manifest(tmp_path):
    assert parse_source("wheels/x.whl", tmp_path).location == f"{tmp_path}/wheels/x.whl"


def test_url_credentials_are_kept_apart_and_never_displayed():
    source = parse_source("ftp://lab:s3cret@ftp.example.com/a.tar.gz")
    assert source.password == "s3cret"
    assert source.display == "ftp://lab:***@ftp.example.com/a.tar.gz"


@pytest.mark.parametrize("text, message", [
    ("hf://chatglm3-6b@main", "'hf://chatglm3-6b@main': the repository must be org/name (hf://ORG/NAME@REVISION for a "
                              "model, hf://datasets/ORG/NAME@REVISION for a dataset)"),
    ("hf://THUDM/chatglm3-6b", "'hf://THUDM/chatglm3-6b': pin a revision: hf://THUDM/chatglm3-6b@<commit or tag>"),
    ("git+https://github.com/THUDM/ChatGLM3", "'git+https://github.com/THUDM/ChatGLM3': pin a commit or tag: git+https://host/repo@<commit or tag>"),
    ("git+svn://x/y@1", "'git+svn://': git sources are git+https://, git+http://, git+ssh:// or git+file://"),
    ("https://example.com/", "'https://example.com/': the URL names no file"),
    ("s3://b/k", "unknown source scheme 's3://' (use hf://, modelscope://, http(s)://, ftp://, git+https://, file:// or a path)"),
])
def test_sources_that_cannot_be_fetched_say_how_to_write_them(text, message):
    with pytest.raises(SourceError) as caught:
        parse_source(text)
    assert str(caught.value) == message
