"""Rewards that differ between the completions of a prompt, for the subprocess scripts.

The tiny random Llama never writes a call, so every completion scores the table's floor (-2):
every group has zero reward variance and a group-relative estimator has no signal. These scores
are a fixed function of the text instead (its length mod 5, minus 2), so groups differ and the
updates move the weights; the categories stay the real ones. ``varied_episode_rewards`` does the
same for multi-turn episodes: the function of the last turn's text is added on its last token.
"""

from __future__ import annotations

from unittest import mock

import torch

from tl_lightning import ppo, rollouts

real_score_responses = rollouts.score_responses
real_episode_batch = ppo.episode_batch


def varied_scores(texts, gold, tools, table=None):
    _, categories = real_score_responses(texts, gold, tools, table)
    return torch.tensor([len(t) % 5 - 2.0 for t in texts]), categories


def varied_rewards():
    """A context in which ``IRMPPOModule.training_step`` scores with ``varied_scores``."""
    return mock.patch.object(rollouts, "score_responses", varied_scores)


def varied_episode_batch(*args, **kwargs):
    scored = real_episode_batch(*args, **kwargs)
    mask = scored.rollout.response_mask
    last = mask.shape[1] - 1 - mask.flip(1).argmax(1)
    rows = torch.arange(mask.shape[0])
    scored.rewards[rows, last] += torch.tensor([len(t) % 5 - 2.0 for t in scored.rollout.texts])
    scored.scores = scored.rewards.sum(1)
    return scored


def varied_episode_rewards():
    """A context in which ``IRMPPOModule`` adds ``varied_scores`` to each episode's rewards."""
    return mock.patch.object(ppo, "episode_batch", varied_episode_batch)
