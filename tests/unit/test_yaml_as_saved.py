"""Manifests as editors save them and as people copy them: control characters pasted from a
terminal, comments saved as GBK or UTF-16, a BOM and CRLF line ends, anchors defined twice, two
`<<` keys in one mapping, dates YAML 1.1 reads as timestamps. Each is a located problem (or
reads as written), never a traceback or a silently different value.

Sources: PyYAML's reader refuses C0 control characters other than tab and line ends (yaml/pyyaml
reader.py, NON_PRINTABLE); go-yaml v3 refuses a second `<<` key in a mapping ("mapping key "<<"
already defined at line 14", go-yaml/yaml#914, where the maintainer points to `<<: [*a, *b]`)
while PyYAML lets the later one win, and GitLab CI users write them (adrienverge/yamllint#134);
YAML 1.1's timestamp type
(https://yaml.org/type/timestamp.html) reads `2001-12-14t21:59:43.10-05:00` unquoted.
"""

import textwrap

import pytest
import yaml

from envctl.errors import ManifestError
from envctl.manifest.discovery import search_roots
from envctl.manifest.loader import load
from envctl.manifest.yamlsrc import parse_file, parse_text

HEAD = textwrap.dedent("""\
    name: saved
    description: a manifest as an editor saved it
    device: {kind: cpu}
    image: {ref: "python:3.11-slim"}
""")


def write(tmp_path, data: bytes):
    path = tmp_path / "manifest.yaml"
    path.write_bytes(data)
    return path


def problems_of(path, environ):
    with pytest.raises(ManifestError) as caught:
        load(path, environ=dict(environ), roots=search_roots(dict(environ)))
    return [str(p) for p in caught.value.problems]


def loaded(path, environ):
    return load(path, environ=dict(environ), roots=search_roots(dict(environ))).manifest


# --- bytes as saved ---------------------------------------------------------------------------

@pytest.mark.parametrize("char", ["\x0c", "\x1b", "\x00", "\x7f"])
def test_a_control_character_is_located_at_its_line_and_column(tmp_path, clean_env, char):
    path = write(tmp_path, (HEAD + f"# pasted {char}here\nentrypoints: {{}}\n").encode())
    assert problems_of(path, clean_env) == [f"{path}:5:10: the character U+{ord(char):04X} cannot appear in YAML (a control character); remove it"]


@pytest.mark.parametrize("comment, column", [("# 你好".encode("gbk"), 3), ("# café".encode("latin-1"), 6)])
def test_a_comment_saved_in_another_encoding_is_located(tmp_path, clean_env, comment, column):
    path = write(tmp_path, HEAD.encode() + b"# fine\n" + comment + b"\n")
    [problem] = problems_of(path, clean_env)
    assert problem.startswith(f"{path}:6:{column}: not UTF-8 text (") and problem.endswith("); save the file as UTF-8")


def test_utf16_as_windows_editors_save_it_is_named(tmp_path, clean_env):
    path = write(tmp_path, HEAD.encode("utf-16"))
    assert problems_of(path, clean_env) == [f"{path}:1:1: the file is UTF-16 text (as some Windows editors save it); save it as UTF-8"]


def test_a_bom_crlf_and_chinese_values_read_as_written_and_errors_keep_their_lines(tmp_path, clean_env):
    text = HEAD + "container:\n  env: {GREETING: 你好，世界}\nentrypoints:\n  chat: {run: python chat.py, params: {prompt: 类型#上衣}}\n"
    manifest = loaded(write(tmp_path, b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode()), clean_env)
    assert manifest.container.env["GREETING"] == "你好，世界" and manifest.entrypoints["chat"].params == {"prompt": "类型#上衣"}
    path = write(tmp_path, b"\xef\xbb\xbf" + (text + "x: 1\n").replace("\n", "\r\n").encode())
    assert problems_of(path, clean_env) == [f"{path}:9:1: x: unknown key 'x'; expected one of: " + ", ".join(
        ["name", "description", "extends", "vars", "variants", "default_variant", "variant", "device", "image",
         "container", "artifacts", "setup", "entrypoints", "notes"])]


# --- anchors and merge keys -------------------------------------------------------------------

def test_an_anchor_defined_twice_names_both_lines():
    _, problems = parse_text("a: &base {x: 1}\nb: 2\nc: &base {y: 2}\nd: *base\n", "f.yaml")
    assert [str(p) for p in problems] == ["f.yaml:3:4: YAML syntax error: anchor 'base' is defined twice (first at line 1); give each anchor its own name"]


def test_a_syntax_error_names_the_line_its_construct_began():
    _, problems = parse_text("a:\n  b: [1,\nc: 2\n", "f.yaml")
    assert [str(p) for p in problems] == ["f.yaml:4:1: YAML syntax error: while parsing a flow sequence (from line 2), expected ',' or ']', but got '<stream end>'"]


def test_two_merge_keys_in_one_mapping_are_duplicates_not_a_silent_choice(tmp_path, clean_env):
    text = HEAD + textwrap.dedent("""\
        x-common: &common {run: python train.py, workdir: /workspace}
        x-other: &other {workdir: /other}
        entrypoints:
          train:
            <<: *common
            <<: *other
    """)
    # PyYAML lets the later `<<` win, the merge-key specification's first-listed rule the earlier:
    # a silent choice either way.
    assert yaml.safe_load(text)["entrypoints"]["train"]["workdir"] == "/other"
    path = write(tmp_path, text.encode())
    assert problems_of(path, clean_env) == [f"{path}:10:5: entrypoints.train.<<: duplicate key '<<' (first defined at line 9); "
                                            "merge several mappings with one <<: [*a, *b] (the first listed wins)"]
    fixed = write(tmp_path, text.replace("    <<: *common\n    <<: *other\n", "    <<: [*other, *common]\n").encode())
    assert loaded(fixed, clean_env).entrypoints["train"].workdir == "/other"


# --- dates ------------------------------------------------------------------------------------

def test_a_date_whose_text_yaml_keeps_is_text_where_envctl_writes_text(tmp_path, clean_env):
    path = write(tmp_path, (HEAD + textwrap.dedent("""\
        vars: {release: 2024-01-01}
        container: {env: {RELEASE: 2024-01-01}}
        entrypoints:
          report: {run: [python, report.py, 2024-06-30], params: {since: 2023-10-01}}
    """)).encode())
    manifest = loaded(path, clean_env)
    assert manifest.vars["release"] == "2024-01-01" and manifest.container.env["RELEASE"] == "2024-01-01"
    assert manifest.entrypoints["report"].run == ["python", "report.py", "2024-06-30"]
    assert manifest.entrypoints["report"].params == {"since": "2023-10-01"}


@pytest.mark.parametrize("written, read", [
    ("2001-12-14t21:59:43.10-05:00", "2001-12-14 21:59:43.100000-05:00"),
    ("2001-12-14 21:59:43.10 -5", "2001-12-14 21:59:43.100000-05:00"),
    ("2002-12-14T00:00:00Z", "2002-12-14 00:00:00+00:00"),
])
@pytest.mark.parametrize("field, line_of", [
    ("container: {{env: {{STAMP: {v}}}}}", "container.env.STAMP"),
    ("vars: {{stamp: {v}}}", "vars.stamp"),
    ("entrypoints: {{e: {{run: echo, params: {{stamp: {v}}}}}}}", "entrypoints.e.params.stamp"),
])
def test_a_timestamp_whose_text_yaml_changes_is_refused_with_the_quoted_form(tmp_path, clean_env, written, read, field, line_of):
    path = write(tmp_path, (HEAD + field.format(v=written) + "\n").encode())
    [problem] = problems_of(path, clean_env)
    assert problem.startswith(f"{path}:5:") and f": {line_of}: " in problem
    assert problem.endswith(f"YAML 1.1 reads {written} as the timestamp {read}; write \"{written}\" (quoted) to keep the text {written}")


def test_a_date_in_a_text_field_says_what_to_write(tmp_path, clean_env):
    path = write(tmp_path, HEAD.replace("description: a manifest as an editor saved it", "description: 2024-01-01").encode())
    assert problems_of(path, clean_env) == [f"{path}:2:14: description: expected text, got the date 2024-01-01 (YAML's reading of 2024-01-01); write \"2024-01-01\""]


# --- each entry of a mapping at its own line ----------------------------------------------------

def test_a_bad_environment_entry_is_reported_at_its_own_line(tmp_path, clean_env):
    path = write(tmp_path, (HEAD + textwrap.dedent("""\
        container:
          env:
            GOOD: "1"
            DEBUG: yes
        setup:
          - name: s
            run: echo
            env:
              OK: a
              "A=B": x
        entrypoints:
          e: {run: echo, params: {ok: 1, bad: [1, 2]}}
    """)).encode())
    problems = problems_of(path, clean_env)
    assert [p.split(": ")[0:2] for p in problems] == [
        [f"{path}:8:12", "container.env.DEBUG"], [f"{path}:14:7", "setup[0].env.A=B"], [f"{path}:16:39", "entrypoints.e.params.bad"]]
    assert problems[2].endswith("expected a single value (text, number, boolean), got a list")


def test_a_base_60_ulimit_is_told_to_quote_its_soft_and_hard_limits(tmp_path, clean_env):
    path = write(tmp_path, (HEAD + "container:\n  ulimits: {rtprio: 10:50}\n").encode())
    assert problems_of(path, clean_env) == [f"{path}:6:21: container.ulimits.rtprio: YAML 1.1 reads 10:50 as the base-60 number 650; "
                                            "write \"10:50\" (quoted) for soft:hard limits"]


def test_parse_file_of_a_missing_file_is_a_problem_not_a_crash(tmp_path):
    _, problems = parse_file(tmp_path / "nope.yaml")
    assert [p.message for p in problems] == ["file not found"]


# --- documents that expand or nest beyond any manifest -------------------------------------------

def test_aliases_of_aliases_are_refused_before_they_expand(tmp_path, clean_env):
    """Twelve lines that expand to 9**8 (43 million) values: PyYAML shares them, but envctl gives
    every value a path and a position. Refused at once (kind: CVE-2019-11253, "billion laughs")."""
    lines = [HEAD, "x-a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"]
    for previous, name in zip("abcdefg", "bcdefgh"):
        lines.append(f"x-{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]\n")
    lines.append("vars: {v: *h}\n")
    path = write(tmp_path, "".join(lines).encode())
    [problem] = problems_of(path, clean_env)
    assert problem.endswith(": aliases expand the document to more than 100000 values (aliases of aliases multiply); "
                            "write the values out or reuse fewer") and problem.startswith(f"{path}:")


def test_aliases_reused_as_manifests_reuse_them_are_read(tmp_path, clean_env):
    entries = "".join(f"  e{i}: *common\n" for i in range(300))
    path = write(tmp_path, (HEAD + "x-common: &common {run: python train.py, params: {lr: '1e-4'}}\nentrypoints:\n" + entries).encode())
    assert len(loaded(path, clean_env).entrypoints) == 300


@pytest.mark.parametrize("depth", [70, 900, 3000])
def test_nesting_deeper_than_any_manifest_is_a_located_problem(tmp_path, clean_env, depth):
    path = write(tmp_path, (HEAD + "vars: {v: " + "[" * depth + "]" * depth + "}\n").encode())
    problems = problems_of(path, clean_env)
    assert problems and all("Recursion" not in p for p in problems)
    assert any(p.startswith(f"{path}:5:") and p.endswith("nested more than 64 levels deep; no manifest field is") for p in problems)


@pytest.mark.parametrize("line", ["container: {cap_add: [${CAP:-SYS_PTRACE}]}", "vars: {n: ${N:-2}}"])
def test_an_unquoted_reference_inside_brackets_says_to_quote_it(tmp_path, clean_env, line):
    path = write(tmp_path, (HEAD + line + "\n").encode())
    [problem] = problems_of(path, clean_env)
    assert problem.startswith(f"{path}:5:") and problem.endswith('inside [ ] or { } a value holding ${...} must be quoted: "${NAME}"')


# --- the command line reads and shows manifests as written -------------------------------------

def envctl(*args, env):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "envctl", *args], capture_output=True, text=True, env=env, timeout=60)


def test_validate_finds_variants_as_the_loader_reads_them(tmp_path, clean_env):
    """`validate NAME` checks every variant; the list of variants comes from envctl's reader, so
    a document it refuses is reported once, located, never a traceback."""
    path = write(tmp_path, (HEAD + "x-v: &v {small: {vars: {size: s}}}\nvariants:\n  <<: *v\n  large: {vars: {size: l}}\n"
                            "default_variant: small\n").encode())
    done = envctl("validate", str(path), env=dict(clean_env))
    assert done.returncode == 0 and done.stdout.strip() == f"ok: saved [large, small] ({path})", done.stderr
    deep = write(tmp_path, (HEAD + "vars: {v: " + "[" * 900 + "]" * 900 + "}\n").encode())
    done = envctl("validate", str(deep), env=dict(clean_env))
    assert done.returncode == 3 and done.stderr.splitlines() == [f"error: {deep}:5:73: nested more than 64 levels deep; no manifest field is"]


def test_show_writes_scripts_as_blocks_and_long_lines_whole(tmp_path, clean_env):
    long = "python train.py " + " ".join(f"--option-{i} value-{i}" for i in range(12))
    path = write(tmp_path, (HEAD + textwrap.dedent(f"""\
        entrypoints:
          train:
            description: {long}
            run: |
              echo "$V"
              cd /workspace && {long}
    """)).encode())
    done = envctl("show", str(path), env=dict(clean_env))
    assert done.returncode == 0, done.stderr
    assert f"    description: {long}\n" in done.stdout
    assert f'    run: |\n      echo "$V"\n      cd /workspace && {long}\n' in done.stdout
    shown = yaml.safe_load(done.stdout)["entrypoints"]["train"]
    assert shown["run"] == f'echo "$V"\ncd /workspace && {long}\n' and shown["description"] == long


@pytest.mark.parametrize("mount, message", [
    ("~/models:/models:ro", "'~/models': '~' is not expanded in a mount; write ${HOME}/models for your home directory"),
    ("$HOME/data:/data", "'$HOME/data': a bare $HOME is not expanded in a mount; write ${HOME}"),
    ("/srv/$USER:/data", "'/srv/$USER': a bare $USER is not expanded in a mount; write ${USER}"),
])
def test_a_mount_written_for_compose_or_a_shell_is_not_taken_as_a_directory_beside_the_manifest(tmp_path, clean_env, mount, message):
    """Compose expands `~` and `$HOME` in volumes; envctl took `~/models` as <manifest dir>/~/models."""
    path = write(tmp_path, (HEAD + f'container: {{mounts: ["{mount}"]}}\n').encode())
    assert problems_of(path, clean_env) == [f"{path}:5:22: container.mounts[0]: {message}"]


def test_a_mount_with_a_reference_is_expanded(tmp_path, clean_env):
    path = write(tmp_path, (HEAD + 'container: {mounts: ["${HOME}/models:/models:ro", "$${HOME}:/literal"]}\n').encode())
    environ = dict(clean_env, HOME="/home/user")
    assert loaded(path, environ).container.mounts == ["/home/user/models:/models:ro", "${HOME}:/literal"]


def test_a_bad_argument_and_a_port_out_of_range_are_located_at_their_items(tmp_path, clean_env):
    path = write(tmp_path, (HEAD + "entrypoints:\n  a: {run: [echo, ~, x], ports: [8080, 0, 99999]}\n  b:\n    run:\n"
                                   "      - python\n      - [nested]\n").encode())
    assert problems_of(path, clean_env) == [
        f"{path}:6:19: entrypoints.a.run[1]: an argument is text (or a number), got nothing (null)",
        f"{path}:6:40: entrypoints.a.ports[1]: 0 is not a port (1 to 65535)",
        f"{path}:6:43: entrypoints.a.ports[2]: 99999 is not a port (1 to 65535)",
        f"{path}:10:9: entrypoints.b.run[1]: an argument is text (or a number), got a list",
    ]


@pytest.mark.parametrize("where, block", [
    ("artifacts.w.source", 'artifacts: {w: {source: "$HOME/weights.bin"}}'),
    ("image.tarball.source", 'image: {ref: "python:3.11", tarball: {source: "$HOME/weights.bin"}}'),
])
def test_a_path_source_with_a_shell_variable_is_refused_with_the_form_to_write(tmp_path, clean_env, where, block):
    """`$HOME/weights.bin` was taken as <manifest dir>/$HOME/weights.bin; `${HOME}` is expanded."""
    text = HEAD.replace('image: {ref: "python:3.11-slim"}\n', "") if block.startswith("image") else HEAD
    path = write(tmp_path, (text + block + "\n").encode())
    [problem] = problems_of(path, clean_env)
    assert problem.endswith(f": {where}: '$HOME/weights.bin': a bare $HOME is not expanded in a path; write ${{HOME}}")
    fixed = write(tmp_path, (text + block.replace("$HOME", "${HOME}") + "\n").encode())
    loaded(fixed, dict(clean_env, HOME="/home/user"))
