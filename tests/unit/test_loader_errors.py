"""Every broken fixture manifest gives exactly the expected problems, each located."""

from pathlib import Path

import pytest

from support import REPO
from envctl.errors import ManifestError
from envctl.manifest.discovery import search_roots
from envctl.manifest.loader import load
import golden

BROKEN = Path(__file__).resolve().parents[1] / "fixtures" / "broken"
CASES = sorted(p.stem for p in BROKEN.glob("*.yaml"))


def problems_text(path: Path, environ) -> str:
    with pytest.raises(ManifestError) as caught:
        load(path, environ=environ, roots=search_roots(environ))
    lines = [str(p) for p in caught.value.problems]
    return "\n".join(lines).replace(str(BROKEN), "{dir}").replace(str(REPO), "{repo}") + "\n"


@pytest.mark.parametrize("case", CASES)
def test_broken_manifest_reports_exact_problems(case, clean_env):
    golden.check(BROKEN / "expected" / f"{case}.txt", problems_text(BROKEN / f"{case}.yaml", dict(clean_env)))


def test_every_problem_is_located_with_line_and_column(clean_env):
    for case in CASES:
        with pytest.raises(ManifestError) as caught:
            load(BROKEN / f"{case}.yaml", environ=dict(clean_env), roots=search_roots(dict(clean_env)))
        for problem in caught.value.problems:
            assert problem.line is not None and problem.column is not None, (case, str(problem))
            assert Path(problem.file).is_file(), (case, str(problem))


def test_a_variant_selected_by_name_must_exist(clean_env):
    with pytest.raises(ManifestError) as caught:
        load(f"{BROKEN}/variant_unknown.yaml:8b", environ=dict(clean_env), roots=search_roots(dict(clean_env)))
    assert [p.message for p in caught.value.problems] == [
        "no variant '14b' (did you mean '13b'?); variants: 13b, 7b",
        "no variant '8b'; variants: 13b, 7b",
        "'name' cannot be set in a variant",
    ]


DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize("ref", [f"example/image:1@{DIGEST}", f"example/image@{DIGEST}"])
def test_a_digest_ref_without_tarball_or_build_is_valid(ref, clean_env, tmp_path):
    """The neighbour that stays allowed: an image already on the host, named by its registry
    digest (docker pull NAME@DIGEST keeps it in RepoDigests), is looked up, never tagged."""
    manifest = tmp_path / "m.yaml"
    manifest.write_text(f"name: m\ndescription: d\ndevice: {{kind: cpu}}\nimage: {{ref: '{ref}'}}\n")
    loaded = load(manifest, environ=dict(clean_env), roots=search_roots(dict(clean_env)))
    assert loaded.manifest.image.ref == ref


def test_a_digest_ref_with_a_tarball_is_refused_with_or_without_a_tag(clean_env, tmp_path):
    for ref, write in ((f"example/image@{DIGEST}", "example/image:TAG"), (f"localhost:5000/a/b:2@{DIGEST}", "localhost:5000/a/b:2")):
        manifest = tmp_path / "m.yaml"
        manifest.write_text(f"name: m\ndescription: d\ndevice: {{kind: cpu}}\nimage:\n  ref: '{ref}'\n  tarball: {{source: /x.tar}}\n")
        with pytest.raises(ManifestError) as caught:
            load(manifest, environ=dict(clean_env), roots=search_roots(dict(clean_env)))
        [problem] = caught.value.problems
        assert (problem.line, problem.path) == (5, "image.ref"), str(problem)
        assert f"write ref: {write} and" in problem.message and "image.id" in problem.message


def test_a_reference_in_a_key_is_refused_once_values_and_literals_pass(tmp_path, clean_env):
    """Keys are names, never expanded: `${v}: 1` under env, build_args or params would become a
    name literally `${v}`. Said once per key: where a name check already refuses the key
    (params must be variable names), only that check speaks."""
    bundle = tmp_path / "keys"
    bundle.mkdir()
    (bundle / "manifest.yaml").write_text(
        "name: keys\ndescription: d\nvars: {v: a}\ndevice: {kind: cpu}\n"
        "image: {ref: 'e.com/i:1', pull: true, build_args: {'${v}': '1', 'V_$${v}': '2'}}\n"
        "container:\n  env:\n    '${v}_${v}': '1'\n    A: '${v}'\n"
        "entrypoints:\n  e: {run: x, params: {'p_${v}': 1}}\n")
    with pytest.raises(ManifestError) as caught:
        load(str(bundle / "manifest.yaml"), {}, search_roots({}, tmp_path))
    said = [(p.path, p.message) for p in caught.value.problems]
    assert said == [
        ("image.build_args.${v}", "'${v}' is a key: keys are names and are not expanded; write the name itself "
                                  "(only values take ${...})"),
        ("container.env.${v}_${v}", "'${v}_${v}' is a key: keys are names and are not expanded; write the name "
                                    "itself (only values take ${...})"),
        ("entrypoints.e.params.p_${v}", "'p_${v}' cannot be an environment variable name")]
