"""The checker core: right answers pass in any legitimate form, wrong ones never, nothing leaks."""
import numpy as np
import pytest
import torch

from handson import check


def run(capsys, fn, *args, **kwargs):
    verdict = fn(*args, **kwargs)
    return bool(verdict), capsys.readouterr().out


@pytest.mark.parametrize("answer", [3, 3.0, np.float32(3.0), torch.tensor(3.0), np.array(3)])
def test_close_accepts_numbers_in_any_numeric_type(capsys, answer):
    ok, out = run(capsys, check.close, answer, 3.0)
    assert ok and out.startswith("PASS")


@pytest.mark.parametrize("answer", ["3", b"3", True, [True], "abc", {"a": 3}])
def test_close_rejects_non_numbers(capsys, answer):
    ok, out = run(capsys, check.close, answer, 3.0 if not isinstance(answer, list) else [1.0])
    assert not ok and out.startswith("NOT YET")


def test_close_never_prints_the_expected_value_or_the_difference(capsys):
    ok, out = run(capsys, check.close, 0.123, 0.98765, hint="think about the diagonal")
    assert not ok and "0.98765" not in out and "0.864" not in out and "difference" not in out
    assert "think about the diagonal" in out


def test_none_gets_the_nudge_not_the_hint(capsys):
    ok, out = run(capsys, check.close, None, 1.0, hint="specific", nudge="conceptual")
    assert not ok and "conceptual" in out and "specific" not in out
    ok, out = run(capsys, check.close, ..., 1.0, hint="specific")
    assert not ok and "no answer yet" in out


@pytest.mark.parametrize("typed,ok", [(0.894, True), (0.8943, True), (0.89432, True), (0.893, False),
                                      (0.892, False), (0.9, False), (0.89, False)])
def test_places_accepts_an_answer_typed_to_that_many_decimals(capsys, typed, ok):
    assert run(capsys, check.close, typed, 0.89432, places=3)[0] is ok


@pytest.mark.parametrize("answer,ok", [(7, True), (np.int64(7), True), (torch.tensor(7), True),
                                       (7.0, False), (np.float64(7.0), False), (True, False),
                                       (torch.tensor(7.0), False), (8, False)])
def test_integer_answers_must_be_integers(capsys, answer, ok):
    assert run(capsys, check.close, answer, 7, integer=True)[0] is ok


def test_function_matches_gives_each_function_its_own_inputs(capsys):
    def reference(x):
        return x * 2

    def in_place(x):  # a right answer that mutates its input
        x.mul_(2)
        return x

    make = lambda trial: (torch.arange(3.0) + trial,)  # noqa: E731
    assert run(capsys, check.function_matches, in_place, reference, make)[0]
    assert not run(capsys, check.function_matches, lambda x: x * 3, reference, make)[0]
    assert not run(capsys, check.function_matches, lambda x: None, reference, make)[0]


def test_function_matches_reports_the_readers_line_not_the_checkers(capsys):
    def broken(x):
        return x @ torch.ones(5, 5)  # shape error raised inside torch

    ok, out = run(capsys, check.function_matches, broken, lambda x: x, lambda t: (torch.ones(3),))
    assert not ok and "your function raised RuntimeError" in out
    line = broken.__code__.co_firstlineno + 1
    assert f"(line {line} of your code)" in out


def test_a_failing_reference_is_a_checker_bug_not_the_readers_fault(capsys):
    def reference(x):
        raise ValueError("bug in the book")

    with pytest.raises(check.CheckerBug):
        check.function_matches(lambda x: x, reference, lambda t: (torch.ones(2),))


def test_not_implemented_is_reported_gently(capsys):
    def todo(x):
        raise NotImplementedError

    ok, out = run(capsys, check.function_matches, todo, lambda x: x, lambda t: (torch.ones(2),))
    assert not ok and "not implemented yet" in out
