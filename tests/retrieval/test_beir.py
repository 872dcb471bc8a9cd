"""BEIR IO: round trip, and malformed files fail with one line naming file and line."""

import json

import pytest

from ptlab.errors import DataError
from ptlab.retrieval.beir import Collection, load_beir, save_beir


def _write(folder, corpus, queries, qrels, split="test"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus))
    (folder / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in queries))
    (folder / "qrels").mkdir(exist_ok=True)
    (folder / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"{a}\t{b}\t{c}\n" for a, b, c in qrels))
    return folder


CORPUS = [{"_id": "d1", "title": "A", "text": "alpha"}, {"_id": "d2", "title": "", "text": "beta"}]
QUERIES = [{"_id": "q1", "text": "what is alpha", "metadata": {"answers": ["alpha"]}}, {"_id": "q2", "text": "beta?"}]
QRELS = [("q1", "d1", 1), ("q2", "d2", 2)]


def test_round_trip(tmp_path):
    col = load_beir(_write(tmp_path / "c", CORPUS, QUERIES, QRELS))
    assert col.qrels == {"test": {"q1": {"d1": 1}, "q2": {"d2": 2}}}
    assert col.query_meta == {"q1": {"answers": ["alpha"]}}
    assert col.doc_text("d1") == "A. alpha" and col.doc_text("d2") == "beta"
    again = load_beir(save_beir(col, tmp_path / "copy"))
    assert (again.corpus, again.queries, again.qrels, again.query_meta) == (col.corpus, col.queries, col.qrels, col.query_meta)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers


@pytest.mark.parametrize(
    "corpus, queries, qrels, where, what",
    [
        (CORPUS + [{"_id": "d1", "text": "again"}], QUERIES, QRELS, "corpus.jsonl:3", "duplicate id 'd1'"),
        ([{"title": "x", "text": "no id"}] + CORPUS, QUERIES, QRELS, "corpus.jsonl:1", "missing '_id'"),
        (CORPUS, QUERIES + [{"_id": "q1", "text": "dup"}], QRELS, "queries.jsonl:3", "duplicate id 'q1'"),
        (CORPUS, [{"_id": "", "text": "x"}] + QUERIES, QRELS, "queries.jsonl:1", "missing '_id'"),
        (CORPUS, [{"_id": "q9"}] + QUERIES, QRELS, "queries.jsonl:1", "has no 'text'"),
        (CORPUS, QUERIES, QRELS + [("q1", "d7", 1)], "test.tsv:4", "unknown document id 'd7'"),
        (CORPUS, QUERIES, [("q5", "d1", 1)] + QRELS, "test.tsv:2", "unknown query id 'q5'"),
        (CORPUS, QUERIES, QRELS + [("q1", "d1", 1)], "test.tsv:4", "duplicate judgement"),
        (CORPUS, QUERIES, QRELS + [("q1", "d2", "high")], "test.tsv:4", "not an integer"),
    ],
)
def test_malformed_files_name_file_and_line(tmp_path, corpus, queries, qrels, where, what):
    folder = _write(tmp_path / "c", corpus, queries, qrels)
    with pytest.raises(DataError) as err:
        load_beir(folder)
    msg = str(err.value)
    assert where in msg and what in msg and "\n" not in msg


def test_bad_json_and_missing_files(tmp_path):
    folder = _write(tmp_path / "c", CORPUS, QUERIES, QRELS)
    with (folder / "corpus.jsonl").open("a") as f:
        f.write("{not json\n")
    with pytest.raises(DataError, match=r"corpus.jsonl:3: invalid JSON"):
        load_beir(folder)
    (folder / "corpus.jsonl").unlink()
    with pytest.raises(DataError, match=r"corpus.jsonl: missing document file"):
        load_beir(folder)
    with pytest.raises(DataError, match="missing qrels file for split 'dev'"):
        load_beir(_write(tmp_path / "d", CORPUS, QUERIES, QRELS), splits=["dev"])


def test_split_queries_unknown_split():
    col = Collection(corpus={"d": {"title": "", "text": "x"}}, queries={"q": "x"}, qrels={"test": {"q": {"d": 1}}})
    assert col.split_queries("test") == {"q": "x"}
    with pytest.raises(DataError, match="no qrels split 'train'"):
        col.split_queries("train")
