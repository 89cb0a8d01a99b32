"""Prompt choice: same speaker, never the target itself, independent of order, errors named."""

import pytest

from local_lib.data.prompts import PromptError, pick_prompts

POOL = {"a_1": "a", "a_2": "a", "a_3": "a", "b_1": "b", "b_2": "b"}


def test_prompt_is_another_utterance_of_the_same_speaker() -> None:
    prompts = pick_prompts(POOL, POOL, seed=0)
    assert set(prompts) == set(POOL)
    for utt, prompt in prompts.items():
        assert prompt != utt and POOL[prompt] == POOL[utt]


def test_choice_ignores_order_and_job_split_but_follows_the_seed() -> None:
    whole = pick_prompts(POOL, POOL, seed=3)
    reversed_pool = dict(reversed(list(POOL.items())))
    assert pick_prompts({"a_2": "a"}, reversed_pool, seed=3) == {"a_2": whole["a_2"]}
    choices = {tuple(sorted(pick_prompts(POOL, POOL, seed=s).items())) for s in range(20)}
    assert len(choices) > 1


def test_a_speaker_without_another_utterance_is_named() -> None:
    with pytest.raises(PromptError, match=r"c_1: speaker c has no other utterance in data/test"):
        pick_prompts({"c_1": "c"}, {"c_1": "c", "a_1": "a"}, seed=0, source="data/test")
