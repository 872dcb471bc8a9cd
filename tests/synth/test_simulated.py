"""The simulated teacher: each declared parameter does what it says, with numbers; durable, shared knowledge."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import Counter

import pytest

from ptlab.errors import ConfigError
from ptlab.synth import ChatRequest, TeacherConfig, make_teacher
from ptlab.synth.strategies import Seed, StrategyConfig, run_strategy
from ptlab.synth.teachers.simulated import REFUSAL, SimulatedTeacher
from ptlab.synth.teachers.simulator import SimulatorParams
from ptlab.synth.templates import Templates
from ptlab.tasks import get_task

T = Templates()
MATH = get_task("math")


@pytest.fixture
def sim(tmp_path):
    """`sim(**params)`: a math teacher with its own knowledge file (one per test)."""
    def make(task="math", **kw):
        return SimulatedTeacher(task, knowledge_path=tmp_path / "knowledge.sqlite", **kw)
    return make


def ask(teacher, op, question, n=1, temperature=1.0, start=0):
    reqs = [ChatRequest.user(T.render(op, question=question), temperature=temperature, sample_index=start + k)
            for k in range(n)]
    return [r.text for r in teacher.generate(reqs)]


def within(share: float, p: float, n: int, z: float = 4.0) -> bool:
    """`share` of n draws is within z binomial standard deviations of p (fixed seeds: no flakiness)."""
    return abs(share - p) <= z * math.sqrt(p * (1 - p) / n) + 1e-9


def correct(gold: str, text: str) -> bool:
    return MATH.verify(gold, text)["correct"]


# -- answers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 4, 8])
def test_answer_augmentation_draws_exactly_k_distinct_correct_solutions(sim, k):
    teacher = sim(answer_paths=k, answer_error=0.0)
    for seed in teacher.seeds(6):
        texts = ask(teacher, "answer", seed.prompt, n=150)
        assert all(correct(seed.answer, t) for t in texts)  # every path is verified correct
        distinct = Counter(texts)
        available = len(MATH.solution_paths(teacher.knows(seed.prompt).plan, 64))
        assert len(distinct) == min(k, available) and available >= 4  # every default-knob plan has 4 or more
        assert seed.chosen.strip() in distinct  # path 0 is the task's own solution
        assert min(distinct.values()) >= 150 / len(distinct) / 3  # drawn uniformly
    assert len(set(ask(teacher, "answer", seed.prompt, n=5, temperature=0.0))) == 1  # greedy: one reply


def test_answer_error_is_the_share_of_wrong_answers_and_the_mistakes_vary(sim):
    teacher = sim(answer_error=0.25, answer_paths=4)
    seeds = teacher.seeds(40)
    wrong = total = 0
    wrong_texts: Counter = Counter()
    for ex in seeds:
        for text in ask(teacher, "answer", ex.prompt, n=10):
            ok = correct(ex.answer, text)
            wrong += not ok
            total += 1
            if not ok:
                wrong_texts[(ex.prompt, MATH.verify(ex.answer, text)["predicted"])] += 1
    assert within(wrong / total, 0.25, total)
    many = ask(sim(answer_error=1.0), "answer", seeds[0].prompt, n=60)
    assert not any(correct(seeds[0].answer, t) for t in many)
    assert len(set(many)) >= 8 and len({MATH.verify("0", t)["predicted"] for t in many}) >= 4  # not one wrong string


# -- rephrasings --------------------------------------------------------------------------------


def test_rephrase_keeps_the_answer_except_at_the_drift_share(sim):
    teacher = sim(rephrase_wordings=3, rephrase_drift=0.2, answer_error=0.0)
    seeds = teacher.seeds(40)
    drifted = total = 0
    for ex in seeds:
        kept = set()
        for text in ask(teacher, "rephrase", ex.prompt, n=12):
            known = teacher.knows(text)
            assert " ".join(text.split()) != " ".join(ex.prompt.split()) and known.origin == "rephrase"
            total += 1
            if known.answer != ex.answer:
                drifted += 1
            else:
                kept.add(text)
                assert correct(ex.answer, ask(teacher, "answer", text)[0])  # answered with the seed's gold
        assert len(kept) <= 3
    assert within(drifted / total, 0.2, total)
    many = {t for t in ask(sim(rephrase_wordings=3, rephrase_drift=0.0), "rephrase", seeds[0].prompt, n=40)}
    assert len(many) == 3  # exactly rephrase_wordings distinct wordings


# -- new questions ------------------------------------------------------------------------------


def test_new_question_drift_zero_stays_like_the_seed_and_one_leaves_the_distribution(sim):
    seeds = sim().seeds(10)
    near = sim(new_question_drift=0.0, new_question_invalid=0.0)
    for ex in seeds:
        plan = MATH.parse_plan(ex.prompt)
        for text in ask(near, "new_question", ex.prompt, n=5):
            made = MATH.parse_plan(text)
            assert made["ops"] == plan["ops"] and made["wording"] == "standard"
    far = sim(new_question_drift=1.0, new_question_invalid=0.0)
    plans = [MATH.parse_plan(t) for ex in seeds for t in ask(far, "new_question", ex.prompt, n=5)]
    assert all(len(p["ops"]) == 3 and p["wording"] == "alternate" for p in plans)  # default knobs: 1-2 steps
    half = sim(new_question_drift=0.5, new_question_invalid=0.0)
    texts = [t for ex in seeds for t in ask(half, "new_question", ex.prompt, n=20)]
    share = sum(MATH.parse_plan(t)["wording"] == "alternate" for t in texts) / len(texts)
    assert within(share, 0.5, len(texts))


def test_new_question_error_invalid_share_and_check_error(sim):
    teacher = sim(new_question_error=0.4, new_question_invalid=0.2, check_error=0.1, new_question_drift=0.0)
    seeds = teacher.seeds(20)
    made = [t for ex in seeds for t in ask(teacher, "new_question", ex.prompt, n=10)]
    invalid = [q for q in made if not teacher.knows(q) or not teacher.knows(q).answerable]
    valid = [q for q in made if q not in invalid]
    assert within(len(invalid) / len(made), 0.2, len(made))
    assert all(MATH.parse_plan(q) is None for q in invalid)  # ill-formed: cut off or a quantity missing
    assert ask(teacher, "answer", invalid[0])[0] == REFUSAL
    wrong = total = 0
    for q in valid[:60]:
        gold = teacher.knows(q).answer
        for text in ask(teacher, "answer", q, n=5):
            wrong += not correct(gold, text)
            total += 1
    assert within(wrong / total, 0.4, total)
    checks = [ask(teacher, "check_question", q, temperature=0.0)[0] for q in made]
    flipped = sum((c == "yes") != (q in valid) for c, q in zip(checks, made)) / len(made)
    assert within(flipped, 0.1, len(made))


def test_the_pool_bounds_distinct_new_questions_per_seed(sim):
    seed = sim().seeds(1)[0]
    small = sim(new_question_pool=3, new_question_drift=0.0, new_question_invalid=0.0)
    assert len(set(ask(small, "new_question", seed.prompt, n=60))) == 3
    wide = sim(new_question_drift=0.0, new_question_invalid=0.0)
    assert len(set(ask(wide, "new_question", seed.prompt, n=40))) >= 38


# -- parameters, knowledge, cache -----------------------------------------------------------------


def test_every_parameter_is_described_and_fingerprinted_in_the_model_name(sim):
    base = sim()
    assert set(base.params_dict()) == set(SimulatorParams.model_fields)
    assert all(row["description"] for row in base.describe())
    for name, value in [("answer_paths", 2), ("answer_error", 0.2), ("rephrase_wordings", 2), ("rephrase_drift", 0.3),
                        ("new_question_drift", 0.5), ("new_question_error", 0.1), ("new_question_invalid", 0.0),
                        ("new_question_pool", 5), ("check_error", 0.0)]:
        assert sim(**{name: value}).model != base.model, name
    assert sim(knobs={"wording": "alternate"}).model != base.model
    assert sim().model == base.model and base.model.startswith("math/sim-")
    with pytest.raises(ConfigError, match="teacher: error_rate: replaced by simulator.answer_error"):
        from ptlab.config import validate

        validate(TeacherConfig, {"backend": "simulated", "error_rate": 0.1}, "teacher")


def test_a_question_one_teacher_made_is_known_to_another_with_the_same_parameters(sim, tmp_path):
    # docqa cannot be read back from its prompt: only the shared knowledge makes its new questions answerable
    maker, other = sim("docqa", answer_error=0.0), sim("docqa", answer_error=0.0)
    seed = maker.seeds(1)[0]
    made = [q for q in ask(maker, "new_question", seed.prompt, n=10) if maker.knows(q).answerable]
    assert made and all(ask(other, "answer", q) == ask(maker, "answer", q) != [REFUSAL] for q in made)
    assert ask(sim("docqa", answer_error=0.5), "answer", made[0]) == [REFUSAL]  # other parameters: other knowledge
    script = ("import json, sys\nfrom ptlab.synth import ChatRequest\nfrom ptlab.synth.templates import Templates\n"
              "from ptlab.synth.teachers.simulated import SimulatedTeacher\n"
              f"t = SimulatedTeacher('docqa', knowledge_path={str(tmp_path / 'knowledge.sqlite')!r}, answer_error=0.0)\n"
              "qs = json.loads(sys.stdin.read())\n"
              "reqs = [ChatRequest.user(Templates().render('answer', question=q), temperature=1.0) for q in qs]\n"
              "print(json.dumps([r.text for r in t.generate(reqs)]))\n")
    out = subprocess.run([sys.executable, "-c", script], input=json.dumps(made), capture_output=True, text=True,
                         check=True)
    assert json.loads(out.stdout) == [ask(maker, "answer", q)[0] for q in made]


def test_replies_are_cached_and_a_restarted_teacher_rebuilds_the_same_rows_for_free(home):
    cfg = {"backend": "simulated", "model": "math", "simulator": {"new_question_drift": 0.3}}

    def build():
        with make_teacher(cfg) as teacher:
            assert teacher.cache is not None
            seeds = [Seed(e.id, e.prompt, e.answer) for e in teacher.inner.seeds(6)]
            res = run_strategy(teacher, seeds, StrategyConfig(strategy="new_question", queries=36), task=MATH)
            return res.rows, teacher.report()

    rows, first = build()
    again, second = build()
    assert [r["completion"] for r in again] == [r["completion"] for r in rows] and rows
    assert first["paid"] == first["requests"] > 30 and (second["paid"], second["cached"]) == (0, first["requests"])


def test_learned_examples_are_answered_with_varied_paths_and_budget_applies(home):
    examples = MATH.generate(5, seed=3)
    teacher = make_teacher({"backend": "simulated", "model": "math", "simulator": {"answer_error": 0.0}},
                           budget={"max_queries": 4})
    teacher.inner.learn(examples)
    out = teacher.generate([ChatRequest.user(ex.prompt) for ex in examples])
    assert all(correct(ex.answer, r.text) for ex, r in zip(examples[:4], out))
    assert out[4].error == "budget exhausted"
    rep = teacher.report()
    assert (rep["paid"], rep["skipped"], rep["prompt_tokens"] > 0) == (4, 1, True)
    assert teacher.inner.knows(examples[0].prompt).plan is not None  # read back: rephrasable, several paths
    teacher.close()


def test_templates_are_editable_and_validated(sim, tmp_path):
    (tmp_path / "rephrase.txt").write_text("Say it again, differently:\n{question}\n")
    custom = Templates(tmp_path)
    assert custom.render("rephrase", question="Q?") == "Say it again, differently:\nQ?"
    assert custom.match("Say it again, differently:\nWhat?") == ("rephrase", {"question": "What?"})
    assert custom.match("What?") == ("answer", {"question": "What?"})
    teacher = sim(rephrase_drift=0.0, prompts_dir=str(tmp_path))
    seed = teacher.seeds(1)[0]
    text = teacher.generate([ChatRequest.user(custom.render("rephrase", question=seed.prompt))])[0].text
    assert teacher.knows(text).answer == seed.answer and text.strip() != seed.prompt.strip()
    (tmp_path / "answer.txt").write_text("no field here")
    with pytest.raises(ConfigError, match=r"answer.txt: expected exactly the field \{question\}"):
        Templates(tmp_path)
    with pytest.raises(ConfigError, match="prompts_dir: .* is not a directory"):
        Templates(tmp_path / "missing")


@pytest.mark.parametrize("task_name", ["math", "instruct", "docqa"])
def test_every_task_is_answered_and_rephrased_with_its_gold(sim, task_name):
    teacher = sim(task_name, answer_error=0.0, rephrase_drift=0.0)
    task = get_task(task_name)
    for ex in teacher.seeds(5):
        assert task.verify(ex, ask(teacher, "answer", ex.prompt)[0])["correct"]
        rephrased = ask(teacher, "rephrase", ex.prompt)[0]
        assert teacher.knows(rephrased).answer == ex.answer  # the same gold, reworded where the task can
        assert task.verify(ex, ask(teacher, "answer", rephrased)[0])["correct"]
    assert ask(teacher, "check_question", "What is the colour of the sky?", temperature=0.0) == ["no"]
