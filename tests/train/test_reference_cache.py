"""Reference log-probs cache: a corrupt or mismatched file is reported, deleted and recomputed; writes are atomic."""

from __future__ import annotations

import pytest
import torch

from ptlab.data.tokenize import TokenizedRow
from ptlab.errors import DataError
from ptlab.train.reference import ReferenceLogps, check_cache_file
from tests.train.rows import arithmetic_rows, write_jsonl


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny model on a shared 2-core machine
    yield
    torch.set_num_threads(before)


@pytest.fixture
def trainer(tmp_path, monkeypatch, one_thread):
    """`run(name)` trains 2 DPO steps on data no other test uses; returns (history, reference cache path)."""
    import ptlab.train.loop as loop
    from ptlab.train.loop import train

    data = write_jsonl(tmp_path / "pairs.jsonl", arithmetic_rows(16, seed=4242))
    paths = []
    real = loop.reference_cache_path
    monkeypatch.setattr(loop, "reference_cache_path", lambda *a: paths.append(real(*a)) or paths[-1])

    def run(name: str):
        res = train(dict(model="tiny-test", objective="dpo", data={"path": str(data)}, batch_size=8, max_steps=2,
                         log_every=1, save_every=0, output_dir=str(tmp_path / name)), quiet=True)
        return [{k: v for k, v in r.items() if k != "elapsed_s"} for r in res.history], paths[-1]

    return run


def warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("warning:")]


def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def garbage(path):
    path.write_bytes(b"\x89not a torch file" * 64)


def drop_a_row(path):
    data = torch.load(path, weights_only=True)
    torch.save({"values": data["values"][:-1], "kl": data["kl"]}, path)


def shorten_a_sequence(path):
    data = torch.load(path, weights_only=True)
    data["values"][3][1] = data["values"][3][1][:-1]
    torch.save(data, path)


@pytest.mark.parametrize("damage", [truncate, garbage, drop_a_row, shorten_a_sequence])
def test_a_damaged_cache_is_recomputed_with_one_warning(trainer, capsys, monkeypatch, damage):
    fresh, path = trainer("a")
    assert path.is_file()
    damage(path)
    capsys.readouterr()
    again, path_b = trainer("b")
    assert path_b == path
    [line] = warnings(capsys.readouterr().err)
    assert line.startswith(f"warning: {path}: corrupt cache (") and line.endswith("); recomputing")
    assert again == fresh  # the recomputed reference gives exactly the fresh run's metrics

    import ptlab.train.loop as loop

    monkeypatch.setattr(loop, "compute_reference", lambda *a, **k: pytest.fail("reference recomputed"))
    third, _ = trainer("c")  # healed: the rewritten file is used, silently
    assert third == fresh and warnings(capsys.readouterr().err) == []


def rows_and_values(kl: bool):
    rows = [TokenizedRow([1, 2], [[3, 4, 5], [6]], kl_completion=[7, 8] if kl else None),
            TokenizedRow([], [[3, 4], [5, 6, 7]], kl_completion=[9] if kl else None)]
    values = [[torch.zeros(3), torch.zeros(1)], [torch.zeros(1), torch.zeros(2)]]  # no prompt: first token unscored
    return rows, values, ([torch.zeros(2), torch.zeros(0)] if kl else None)


@pytest.mark.parametrize("kl", [False, True])
def test_shape_check_accepts_what_compute_reference_makes(kl):
    rows, values, kl_values = rows_and_values(kl)
    assert ReferenceLogps(values, kl_values).problem(rows) is None


def test_shape_check_names_what_does_not_fit():
    rows, values, kl_values = rows_and_values(True)
    assert ReferenceLogps(values[:1], kl_values).problem(rows) == "1 rows cached for 2 rows"
    assert ReferenceLogps([values[0], values[1][:1]], kl_values).problem(rows) == "row 1: 1 completions cached for 2"
    assert ReferenceLogps(values, None).problem(rows) == "KL values missing"
    assert ReferenceLogps(values, [kl_values[0], torch.zeros(3)]).problem(rows) == "row 1, KL completion: wrong shape"
    assert ReferenceLogps([values[0], [torch.zeros(1), torch.zeros(2, 1)]], kl_values).problem(rows) \
        == "row 1, completion 1: wrong shape"
    bad = [values[0], [torch.zeros(1), torch.zeros(2, dtype=torch.long)]]
    assert ReferenceLogps(bad, kl_values).problem(rows) == "row 1, completion 1: wrong shape"


def test_check_deletes_a_file_that_does_not_fit(tmp_path, capsys):
    rows, values, _ = rows_and_values(False)
    path = tmp_path / "ref.pt"
    ReferenceLogps(values, None).save(path)
    assert check_cache_file(path, rows) and path.is_file()
    assert not check_cache_file(path, rows[:1])
    assert not path.exists()
    assert capsys.readouterr().err == f"warning: {path}: corrupt cache (2 rows cached for 1 rows); recomputing\n"


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path, monkeypatch):
    rows, values, _ = rows_and_values(False)
    path = tmp_path / "ref.pt"
    ReferenceLogps(values, None).save(path)
    before = path.read_bytes()

    def dies(obj, f):
        f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", dies)
    with pytest.raises(OSError, match="disk full"):
        ReferenceLogps([[torch.ones(3), torch.ones(1)]] * 2, None).save(path)
    assert path.read_bytes() == before  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ref.pt"]
    loaded = ReferenceLogps.load(path)
    assert all(torch.equal(a, b) for ra, rb in zip(loaded.values, values) for a, b in zip(ra, rb))


def test_loading_an_unchecked_corrupt_file_is_one_line_not_a_traceback(tmp_path):
    path = tmp_path / "ref.pt"
    garbage(path)
    with pytest.raises(DataError, match=rf"^{path}: corrupt reference log-probs cache \(unreadable: \w+\); delete"):
        ReferenceLogps.load(path)
