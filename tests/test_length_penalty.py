"""The length penalty against the formula of report section 2.3.3 (its warm-up in the loop: test_rl_loop.py)."""

import pytest
import torch

from mirrorl.algorithms.length_penalty import length_penalty_weight, length_rewards


def test_hand_worked_group():
    # lengths 10..40 -> lambda = 0.5, 0.5 - 1/3, 0.5 - 2/3, -0.5; the two wrong ones keep min(0, lambda)
    out = length_rewards(torch.tensor([10, 20, 30, 40]), torch.tensor([True, True, False, False]), 4)
    torch.testing.assert_close(out, torch.tensor([0.5, 1 / 6, -1 / 6, -0.5]))
    # a short wrong response is not rewarded; the longest correct one gets -0.5
    out = length_rewards(torch.tensor([10, 40]), torch.tensor([False, True]), 2)
    torch.testing.assert_close(out, torch.tensor([0.0, -0.5]))


def test_equal_lengths_give_zero_and_groups_are_independent():
    lengths = torch.tensor([7, 7, 7, 3, 6, 9])
    correct = torch.tensor([True, False, True, True, True, False])
    out = length_rewards(lengths, correct, 3)
    torch.testing.assert_close(out, torch.tensor([0.0, 0.0, 0.0, 0.5, 0.0, -0.5]))


def test_min_and_max_are_over_all_responses_correct_or_not():
    # the only correct response is the middle one: lambda = 0.5 - 50/100 = 0, not +0.5 or -0.5
    out = length_rewards(torch.tensor([0, 50, 100]), torch.tensor([False, True, False]), 3)
    torch.testing.assert_close(out, torch.tensor([0.0, 0.0, -0.5]))


def test_invariants_on_random_groups():
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 200, (64 * 8,), generator=g)
    correct = torch.rand(64 * 8, generator=g) > 0.5
    out = length_rewards(lengths, correct, 8)
    assert out.min() >= -0.5 and out.max() <= 0.5
    assert torch.all(out[~correct] <= 0)  # wrong answers are never rewarded
    grouped, lens, ok = out.view(-1, 8), lengths.view(-1, 8), correct.view(-1, 8)
    for row in range(grouped.shape[0]):
        if lens[row].min() < lens[row].max():
            shortest, longest = lens[row].argmin(), lens[row].argmax()
            assert grouped[row, longest] == -0.5
            if ok[row, shortest]:
                assert grouped[row, shortest] == 0.5
    perm = torch.stack([torch.randperm(8, generator=g) for _ in range(64)])
    permuted = length_rewards(lens.gather(1, perm).view(-1), ok.gather(1, perm).view(-1), 8)
    torch.testing.assert_close(permuted.view(-1, 8), grouped.gather(1, perm))


def test_bad_shapes():
    with pytest.raises(ValueError):
        length_rewards(torch.tensor([1, 2, 3]), torch.tensor([True, False, True]), 2)
    with pytest.raises(ValueError):
        length_rewards(torch.tensor([1, 2]), torch.tensor([True]), 2)


def test_weight_is_a_step_at_the_end_of_warmup():
    assert [length_penalty_weight(i, 0.3, 2) for i in range(4)] == [0.0, 0.0, 0.3, 0.3]
    assert length_penalty_weight(0, 0.3, 0) == 0.3
