"""ModelScope datasets (`modelscope://datasets/org/name@revision`), fetched as the modelscope
SDK fetches them (the dataset's ID, its paged tree listing, each file), from the loopback
stand-in (tests/servers/modelscope_endpoint.py); and the hub forms a source may take, with a
refusal that says them. Was: "the repository must be org/name"."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from envctl.artifacts.cache import Cache
from envctl.artifacts.download import FetchError
from envctl.artifacts.fetch import fetch_all
from envctl.artifacts.sources import SourceError, parse_source
from envctl.manifest.discovery import search_roots
from envctl.manifest.loader import load
from servers.modelscope_endpoint import ModelScopeEndpoint

DATA = {"README.md": b"# alpaca zh\n", "train/part-0.jsonl": b'{"q": 1}\n' * 50, "train/part-1.jsonl": b'{"q": 2}\n' * 70,
        "dev/dev.jsonl": b'{"q": 3}\n', "dataset_infos.json": b"{}\n"}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_manifest(tmp_path: Path, artifacts: str) -> Path:
    path = tmp_path / "m" / "manifest.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text("name: ms-datasets\ndescription: artifacts\ndevice: {kind: cpu}\nimage: {ref: x}\nartifacts:\n"
                    + textwrap.indent(textwrap.dedent(artifacts), "  "))
    return path


def fetch(tmp_path, artifacts: str, cache: str = "cache"):
    loaded = load(write_manifest(tmp_path, artifacts), environ=dict(os.environ),
                  roots=search_roots({"HOME": str(tmp_path)}, cwd=tmp_path))
    return {f.name: f for f in fetch_all(loaded, Cache(tmp_path / cache))}


def envctl(tmp_path, *args, env) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("ENVCTL_", "MODELSCOPE_"))}
    environ.update({"ENVCTL_CACHE": str(tmp_path / "cache"), "HOME": str(tmp_path / "home")})
    environ.update(env)
    return subprocess.run([sys.executable, "-m", "envctl", *args], capture_output=True, text=True, env=environ,
                          timeout=120)


def test_a_dataset_is_fetched_page_by_page_and_verified(tmp_path, monkeypatch):
    with ModelScopeEndpoint(page_limit=2) as endpoint:  # 5 files and 2 directories: 4 pages, then an empty one
        endpoint.add_dataset("AI-ModelScope/alpaca-gpt4-data-zh", {"master": DATA})
        monkeypatch.setenv("MODELSCOPE_ENDPOINT", endpoint.url)
        fetched = fetch(tmp_path, "data: {source: 'modelscope://datasets/AI-ModelScope/alpaca-gpt4-data-zh@master'}\n")
        assert endpoint.listing_requests == 5
    data = fetched["data"]
    for name, content in DATA.items():
        assert (data.path / name).read_bytes() == content
    assert {f.path: f.sha256 for f in data.files} == {n: sha(c) for n, c in DATA.items()}
    assert "modelscope-dataset/AI-ModelScope/alpaca-gpt4-data-zh/master" in str(data.path)


def test_subpath_and_include_take_part_of_a_dataset(tmp_path, monkeypatch):
    with ModelScopeEndpoint() as endpoint:
        endpoint.add_dataset("org/sets", {"v1.0": DATA})
        monkeypatch.setenv("MODELSCOPE_ENDPOINT", endpoint.url)
        fetched = fetch(tmp_path, """\
            train: {source: 'modelscope://datasets/org/sets@v1.0', subpath: train}
            docs: {source: 'modelscope://datasets/org/sets@v1.0', include: ['*.md']}
        """)
    assert sorted(p.relative_to(fetched["train"].path).as_posix() for p in fetched["train"].path.rglob("*.jsonl")) == [
        "train/part-0.jsonl", "train/part-1.jsonl"]
    assert sorted(p.name for p in fetched["docs"].path.rglob("*") if p.is_file()) == ["README.md"]


def test_a_server_that_ignores_the_page_number_ends_the_listing(tmp_path, monkeypatch):
    with ModelScopeEndpoint(ignore_paging=True) as endpoint:
        endpoint.add_dataset("org/sets", {"master": DATA})
        monkeypatch.setenv("MODELSCOPE_ENDPOINT", endpoint.url)
        fetched = fetch(tmp_path, "d: {source: 'modelscope://datasets/org/sets@master'}\n")
        assert endpoint.listing_requests == 2  # page 1, then page 1 again: nothing new
    assert sorted(f.path for f in fetched["d"].files) == sorted(DATA)


def test_a_dataset_and_a_model_of_one_name_are_two_sources(tmp_path, monkeypatch):
    with ModelScopeEndpoint() as endpoint:
        endpoint.add_dataset("org/same", {"master": {"data.jsonl": b"dataset\n"}})
        endpoint.add_repo("org/same", {"master": {"config.json": b"model\n"}})
        monkeypatch.setenv("MODELSCOPE_ENDPOINT", endpoint.url)
        fetched = fetch(tmp_path, """\
            d: {source: 'modelscope://datasets/org/same@master'}
            m: {source: 'modelscope://org/same@master'}
        """)
    assert (fetched["d"].path / "data.jsonl").read_bytes() == b"dataset\n"
    assert (fetched["m"].path / "config.json").read_bytes() == b"model\n"
    assert fetched["d"].path != fetched["m"].path


def test_a_missing_dataset_or_revision_and_a_dataset_named_as_a_model(tmp_path, monkeypatch):
    with ModelScopeEndpoint() as endpoint:
        endpoint.add_dataset("org/sets", {"master": DATA})
        monkeypatch.setenv("MODELSCOPE_ENDPOINT", endpoint.url)
        with pytest.raises(FetchError) as caught:
            fetch(tmp_path, "d: {source: 'modelscope://datasets/org/nope@master'}\n")
        assert caught.value.message == (f"d: modelscope://datasets/org/nope@master (endpoint {endpoint.url}): "
                                        "dataset org/nope not found")
        assert "a model is modelscope://org/nope@master" in caught.value.hint
        with pytest.raises(FetchError) as caught:
            fetch(tmp_path, "d: {source: 'modelscope://datasets/org/sets@v9'}\n")
        assert caught.value.message.endswith("revision v9 not found")
        with pytest.raises(FetchError) as caught:  # the newcomer's dataset, written as a model
            fetch(tmp_path, "d: {source: 'modelscope://org/sets@master'}\n")
        assert caught.value.message.endswith("model org/sets revision master not found")
        assert "a dataset is modelscope://datasets/org/sets@master" in caught.value.hint


def test_a_private_dataset_needs_the_token_which_is_never_printed(tmp_path):
    with ModelScopeEndpoint(token="ms_secret_dataset_token") as endpoint:
        endpoint.add_dataset("org/private", {"master": DATA})
        manifest = write_manifest(tmp_path, "d: {source: 'modelscope://datasets/org/private@master'}\n")
        refused = envctl(tmp_path, "fetch", str(manifest), env={"MODELSCOPE_ENDPOINT": endpoint.url})
        assert refused.returncode != 0 and "access refused (401)" in refused.stderr, refused.stderr
        done = envctl(tmp_path, "fetch", str(manifest),
                      env={"MODELSCOPE_ENDPOINT": endpoint.url, "MODELSCOPE_API_TOKEN": "ms_secret_dataset_token"})
    assert done.returncode == 0, done.stderr
    assert "ms_secret_dataset_token" not in done.stdout + done.stderr + refused.stderr


def test_lock_pins_a_datasets_files_and_a_changed_file_is_drift(tmp_path):
    with ModelScopeEndpoint() as endpoint:
        endpoint.add_dataset("org/sets", {"master": DATA})
        manifest = write_manifest(tmp_path, "d: {source: 'modelscope://datasets/org/sets@master'}\n")
        locked = envctl(tmp_path, "lock", str(manifest), env={"MODELSCOPE_ENDPOINT": endpoint.url})
        assert locked.returncode == 0, locked.stderr
        lock = (manifest.parent / "manifest.lock").read_text()
        assert "modelscope://datasets/org/sets@master" in lock and sha(DATA["dev/dev.jsonl"]) in lock
        endpoint.add_dataset("org/sets", {"master": {**DATA, "dev/dev.jsonl": b"changed\n"}})
        drift = envctl(tmp_path, "fetch", str(manifest), env={"MODELSCOPE_ENDPOINT": endpoint.url,
                                                               "ENVCTL_CACHE": str(tmp_path / "fresh")})
    assert drift.returncode != 0
    assert "differs from manifest.lock: changed dev/dev.jsonl" in drift.stderr, drift.stderr


# -- the forms a hub source takes ------------------------------------------------------------

@pytest.mark.parametrize("written, kind, location, display", [
    ("modelscope://datasets/AI-ModelScope/alpaca-gpt4-data-zh@master", "modelscope",
     "datasets/AI-ModelScope/alpaca-gpt4-data-zh", "modelscope://datasets/AI-ModelScope/alpaca-gpt4-data-zh@master"),
    ("ms://datasets/org/name@v1", "modelscope", "datasets/org/name", "modelscope://datasets/org/name@v1"),
    ("modelscope://org/name@v1", "modelscope", "org/name", "modelscope://org/name@v1"),
    ("modelscope://models/org/name@v1", "modelscope", "org/name", "modelscope://org/name@v1"),  # as its web address
    ("hf://datasets/org/name@main", "hf-dataset", "org/name", "hf://datasets/org/name@main"),
    ("hf://org/name@main", "hf", "org/name", "hf://org/name@main"),
])
def test_hub_forms(written, kind, location, display):
    source = parse_source(written)
    assert (source.kind, source.location, source.display) == (kind, location, display)


@pytest.mark.parametrize("written, message", [
    ("modelscope://datasets/name-only@master",
     "'modelscope://datasets/name-only@master': the repository must be org/name (modelscope://ORG/NAME@REVISION for a "
     "model, modelscope://datasets/ORG/NAME@REVISION for a dataset)"),
    ("modelscope://name-only@master",
     "'modelscope://name-only@master': the repository must be org/name (modelscope://ORG/NAME@REVISION for a model, "
     "modelscope://datasets/ORG/NAME@REVISION for a dataset)"),
    ("hf://a/b/c@main",
     "'hf://a/b/c@main': the repository must be org/name (hf://ORG/NAME@REVISION for a model, "
     "hf://datasets/ORG/NAME@REVISION for a dataset)"),
    ("modelscope://datasets/org/name", "'modelscope://datasets/org/name': pin a revision: "
                                       "modelscope://datasets/org/name@<branch or tag>"),
    ("modelscope://Qwen/Qwen2.5-7B", "'modelscope://Qwen/Qwen2.5-7B': pin a revision: "
                                     "modelscope://Qwen/Qwen2.5-7B@<branch or tag>"),
    ("hf://datasets/org/name", "'hf://datasets/org/name': pin a revision: hf://datasets/org/name@<commit or tag>"),
])
def test_a_refused_hub_source_says_the_forms(written, message):
    with pytest.raises(SourceError) as caught:
        parse_source(written)
    assert str(caught.value) == message


def test_a_model_source_never_names_a_dataset():
    """`datasets/` after the scheme is a dataset (the hub's own route, so no org is named
    "datasets"): a model written through `models/` cannot take that place, and a dataset's
    cache entry is apart from every model's."""
    with pytest.raises(SourceError) as caught:
        parse_source("modelscope://models/datasets/org@name")
    assert str(caught.value) == ("'modelscope://models/datasets/org@name': 'datasets' is no ModelScope org; a dataset "
                                 "is modelscope://datasets/ORG/NAME@REVISION")
    dataset = parse_source("modelscope://datasets/org/name@v1").cache_key()
    model = parse_source("modelscope://org/name@v1").cache_key()
    assert dataset.split("/")[0] == "modelscope-dataset" and model.split("/")[0] == "modelscope"



@pytest.mark.parametrize("written, message", [
    ("https://modelscope.cn/datasets/AI-ModelScope/alpaca-gpt4-data-zh",
     "is a repository's web page; the repository is modelscope://datasets/AI-ModelScope/alpaca-gpt4-data-zh"
     "@<revision> (a branch or tag, e.g. master)"),
    ("https://www.modelscope.cn/datasets/swift/self-cognition/files",
     "the repository is modelscope://datasets/swift/self-cognition@<revision>"),
    ("https://www.modelscope.cn/models/Qwen/Qwen2.5-7B-Instruct/summary",
     "the repository is modelscope://Qwen/Qwen2.5-7B-Instruct@<revision>"),
    ("https://huggingface.co/Qwen/Qwen2.5-7B-Instruct",
     "is a repository's web page; the repository is hf://Qwen/Qwen2.5-7B-Instruct@<revision> (a commit, tag or branch)"),
    ("https://huggingface.co/datasets/tatsu-lab/alpaca/tree/main/data",
     "the repository is hf://datasets/tatsu-lab/alpaca@main (subpath: data)"),
    ("https://hf-mirror.com/Qwen/Qwen2.5-7B-Instruct/tree/v1.0",
     "the repository is hf://Qwen/Qwen2.5-7B-Instruct@v1.0"),
    ("https://huggingface.co/Qwen/Qwen2.5-7B-Instruct/blob/main/config.json",
     "is a file's web page (HTML); the file itself is "
     "https://huggingface.co/Qwen/Qwen2.5-7B-Instruct/resolve/main/config.json"),
])
def test_a_hubs_web_page_is_refused_with_the_source_to_write(written, message):
    """A repository's page copied from the browser is HTML, not the repository (nor a file)."""
    with pytest.raises(SourceError) as caught:
        parse_source(written)
    assert message in str(caught.value) and written in str(caught.value), str(caught.value)


@pytest.mark.parametrize("written", [
    "https://huggingface.co/Qwen/Qwen2.5-7B-Instruct/resolve/main/config.json",
    "https://hf-mirror.com/datasets/tatsu-lab/alpaca/resolve/main/data/train.parquet",
    "https://modelscope.cn/models/Qwen/Qwen2.5-7B-Instruct/resolve/master/config.json",
    "https://www.modelscope.cn/api/v1/models/Qwen/Qwen2.5-7B/repo?Revision=master&FilePath=config.json",
    "https://huggingface.co/api/models/Qwen/Qwen2.5-7B-Instruct",
    "https://example.com/Qwen/Qwen2.5-7B-Instruct",
])
def test_a_hubs_file_address_is_a_file(written):
    assert parse_source(written).kind == "http"
