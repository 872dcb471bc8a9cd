"""The simulated teacher over the task generators, and the editable templates it reads."""

from __future__ import annotations

import pytest

from ptlab.errors import ConfigError
from ptlab.synth import ChatRequest, make_teacher
from ptlab.synth.teachers.simulated import REFUSAL, SimulatedTeacher
from ptlab.synth.templates import Templates
from ptlab.tasks import get_task

T = Templates()


def ask(teacher, op, question, n=1, temperature=1.0):
    reqs = [ChatRequest.user(T.render(op, question=question), temperature=temperature, sample_index=k)
            for k in range(n)]
    return teacher.generate(reqs)


def test_answers_are_gold_except_at_the_error_rate():
    sim = SimulatedTeacher("math", error_rate=0.25, seed=1)
    seeds = sim.seeds(40)
    task = get_task("math")
    correct = total = 0
    for ex in seeds:
        for reply in ask(sim, "answer", ex.prompt, n=10):
            correct += task.verify(ex, reply.text)["correct"]
            total += 1
    assert 0.65 < correct / total < 0.85
    greedy = [r.text for r in ask(sim, "answer", seeds[0].prompt, n=5, temperature=0.0)]
    assert len(set(greedy)) == 1  # temperature 0: sample_index does not matter


def test_rephrase_keeps_the_answer_and_changes_the_words():
    sim = SimulatedTeacher("math", error_rate=0.0)
    task = get_task("math")
    changed = 0
    for ex in sim.seeds(30):
        text = ask(sim, "rephrase", ex.prompt)[0].text
        changed += " ".join(text.split()) != " ".join(ex.prompt.split())
        gold_of_rephrase = sim.knows(text).answer
        assert gold_of_rephrase == ex.answer
        answer = ask(sim, "answer", text)[0].text
        assert task.verify(ex, answer)["correct"]
    assert changed >= 20


def test_new_questions_diversity_and_answerability_check():
    sim = SimulatedTeacher("math", error_rate=0.2, diversity=0.0005, pool_size=10_000)  # a pool of 5 questions
    seed = sim.seeds(1)[0]
    new = [r.text for r in ask(sim, "new_question", seed.prompt, n=60)]
    good = [q for q in new if sim.knows(q).answerable]
    broken = [q for q in new if not sim.knows(q).answerable]
    assert len({" ".join(q.split()) for q in good}) <= 5 and 0.08 < len(broken) / len(new) < 0.35
    assert all("?" not in q for q in broken)
    assert ask(sim, "answer", broken[0])[0].text == REFUSAL
    wide = SimulatedTeacher("math", diversity=1.0)
    assert len({r.text for r in ask(wide, "new_question", seed.prompt, n=40)}) >= 35
    exact = SimulatedTeacher("math", error_rate=0.0)
    assert ask(exact, "check_question", seed.prompt)[0].text == "no"  # a question it never saw
    exact.learn([seed])
    assert ask(exact, "check_question", seed.prompt)[0].text == "yes"
    checks = [r.text for q in good + broken for r in ask(sim, "check_question", q, n=5)]
    expected = ["yes"] * (5 * len(good)) + ["no"] * (5 * len(broken))
    flipped = sum(c != e for c, e in zip(checks, expected)) / len(checks)
    assert 0.08 < flipped < 0.35  # the checker errs at error_rate too


def test_learned_examples_are_answerable_and_budget_applies():
    examples = get_task("math").generate(5, seed=3)
    teacher = make_teacher({"backend": "simulated", "model": "math", "error_rate": 0.0}, budget={"max_queries": 4})
    assert teacher.cache is None  # in-memory knowledge: never cached implicitly
    teacher.inner.learn(examples)
    out = teacher.generate([ChatRequest.user(ex.prompt) for ex in examples])
    assert [r.text for r in out[:4]] == [ex.chosen for ex in examples[:4]]
    assert out[4].error == "budget exhausted"
    rep = teacher.report()
    assert (rep["paid"], rep["skipped"], rep["prompt_tokens"] > 0) == (4, 1, True)


def test_templates_are_editable_and_validated(tmp_path):
    (tmp_path / "rephrase.txt").write_text("Say it again, differently:\n{question}\n")
    custom = Templates(tmp_path)
    assert custom.render("rephrase", question="Q?") == "Say it again, differently:\nQ?"
    assert custom.match("Say it again, differently:\nWhat?") == ("rephrase", {"question": "What?"})
    assert custom.match("What?") == ("answer", {"question": "What?"})
    sim = SimulatedTeacher("math", error_rate=0.0, prompts_dir=str(tmp_path))
    seed = sim.seeds(1)[0]
    text = sim.generate([ChatRequest.user(custom.render("rephrase", question=seed.prompt))])[0].text
    assert sim.knows(text).answer == seed.answer
    (tmp_path / "answer.txt").write_text("no field here")
    with pytest.raises(ConfigError, match=r"answer.txt: expected exactly the field \{question\}"):
        Templates(tmp_path)
    with pytest.raises(ConfigError, match="prompts_dir: .* is not a directory"):
        Templates(tmp_path / "missing")


@pytest.mark.parametrize("task_name", ["math", "instruct", "docqa"])
def test_every_task_is_answered_and_rephrased_with_its_gold(task_name):
    sim = SimulatedTeacher(task_name, error_rate=0.0)
    task = get_task(task_name)
    for ex in sim.seeds(5):
        assert task.verify(ex, ask(sim, "answer", ex.prompt)[0].text)["correct"]
        rephrased = ask(sim, "rephrase", ex.prompt)[0].text
        assert sim.knows(rephrased).answer == ex.answer  # the same gold, reworded where the task can
