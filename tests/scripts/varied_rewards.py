"""Rewards that differ between the completions of a prompt, for the subprocess scripts.

The tiny random Llama never writes a call, so every completion scores the table's floor (-2):
every group has zero reward variance and a group-relative estimator has no signal. These scores
are a fixed function of the text instead (its length mod 5, minus 2), so groups differ and the
updates move the weights; the categories stay the real ones.
"""

from __future__ import annotations

from unittest import mock

import torch

from tl_lightning import ppo

real_score_responses = ppo.score_responses


def varied_scores(texts, gold, tools, table=None):
    _, categories = real_score_responses(texts, gold, tools, table)
    return torch.tensor([len(t) % 5 - 2.0 for t in texts]), categories


def varied_rewards():
    """A context in which ``IRMPPOModule.training_step`` scores with ``varied_scores``."""
    return mock.patch.object(ppo, "score_responses", varied_scores)
