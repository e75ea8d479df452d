"""PKT loss: equals transformers' causal-LM loss with unit weights; weighted by hand."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tl_lightning.losses import IGNORE_INDEX, pkt_loss, prediction_mask, supervised_tokens, token_hits


@pytest.fixture(scope="module")
def small_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=97, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=2, intermediate_size=64)
    return LlamaForCausalLM(config).eval()


def test_unit_weights_equal_transformers_causal_lm_loss(small_llama):
    torch.manual_seed(1)
    input_ids = torch.randint(0, 97, (3, 11))
    labels = input_ids.clone()
    labels[0, :4] = IGNORE_INDEX
    labels[1, 7:] = IGNORE_INDEX
    labels[2, ::3] = IGNORE_INDEX
    with torch.no_grad():
        out = small_llama(input_ids=input_ids, labels=labels)
    ours = pkt_loss(out.logits, labels, torch.ones(labels.shape))
    assert abs(ours.item() - out.loss.item()) < 1e-6


def test_kept_logits_rows_give_the_same_loss(small_llama):
    torch.manual_seed(4)
    input_ids = torch.randint(0, 97, (2, 9))
    labels = input_ids.clone()
    labels[0, :5] = IGNORE_INDEX
    labels[1, 2:4] = IGNORE_INDEX
    weights = torch.rand(2, 9) + 0.5
    with torch.no_grad():
        full = small_llama(input_ids=input_ids).logits
        kept = small_llama(input_ids=input_ids, logits_to_keep=prediction_mask(labels)).logits
    assert kept.shape == (int((labels[:, 1:] != IGNORE_INDEX).sum()), 97)
    assert torch.allclose(pkt_loss(kept, labels, weights), pkt_loss(full, labels, weights), atol=1e-6)
    with pytest.raises(ValueError, match="kept logits rows"):
        pkt_loss(kept[:-1], labels, weights)


def test_prediction_mask_shifts_left():
    labels = torch.tensor([[IGNORE_INDEX, 5, IGNORE_INDEX, 6]])
    assert prediction_mask(labels).tolist() == [[True, False, True, False]]


def test_weighted_loss_by_hand():
    # Two sequences, vocabulary of 3; after the shift the supervised targets are
    # (seq 0) token 2 with weight 4 and (seq 1) token 0 with weight 1.
    logits = torch.tensor([
        [[0.0, 1.0, 2.0], [5.0, 0.0, 0.0], [0.0, 0.0, 0.0]],
        [[1.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 9.0]],
    ])
    labels = torch.tensor([[IGNORE_INDEX, 2, IGNORE_INDEX], [IGNORE_INDEX, IGNORE_INDEX, 0]])
    weights = torch.tensor([[0.0, 4.0, 0.0], [0.0, 0.0, 1.0]])
    ce_first = -math.log(math.exp(2.0) / (1 + math.exp(1.0) + math.exp(2.0)))
    ce_second = -math.log(1.0 / (math.exp(3.0) + 2))
    expected = (4 * ce_first + 1 * ce_second) / 5
    assert pkt_loss(logits, labels, weights).item() == pytest.approx(expected, abs=1e-6)


def test_weights_on_unsupervised_positions_are_ignored():
    torch.manual_seed(2)
    logits = torch.randn(2, 6, 10)
    labels = torch.randint(0, 10, (2, 6))
    labels[:, :3] = IGNORE_INDEX
    weights = torch.rand(2, 6) + 0.5
    noisy = weights.clone()
    noisy[:, :3] = 100.0
    assert torch.equal(pkt_loss(logits, labels, weights), pkt_loss(logits, labels, noisy))


def test_upweighting_a_token_moves_the_loss_towards_its_ce():
    torch.manual_seed(3)
    logits = torch.randn(1, 5, 7)
    labels = torch.randint(0, 7, (1, 5))
    ce = F.cross_entropy(logits[0, :-1], labels[0, 1:], reduction="none")
    hardest = int(ce.argmax()) + 1  # position in labels
    weights = torch.ones(1, 5)
    weights[0, hardest] = 9.0
    assert pkt_loss(logits, labels, weights) > pkt_loss(logits, labels, torch.ones(1, 5))


def test_no_supervised_token_gives_zero_with_gradient():
    logits = torch.randn(1, 4, 5, requires_grad=True)
    labels = torch.full((1, 4), IGNORE_INDEX)
    loss = pkt_loss(logits, labels, torch.zeros(1, 4))
    assert loss.item() == 0.0
    loss.backward()
    assert logits.grad is not None


def test_gradient_flows_only_through_supervised_logits():
    logits = torch.randn(1, 4, 5, requires_grad=True)
    labels = torch.tensor([[IGNORE_INDEX, IGNORE_INDEX, 3, 1]])
    pkt_loss(logits, labels, torch.ones(1, 4)).backward()
    assert logits.grad[0, 0].abs().sum() == 0  # predicts an unsupervised label
    assert logits.grad[0, 1].abs().sum() > 0 and logits.grad[0, 2].abs().sum() > 0
    assert logits.grad[0, 3].abs().sum() == 0  # last position predicts nothing


def test_token_hits_and_select():
    logits = torch.zeros(1, 4, 3)
    logits[0, 0, 1] = 1.0  # predicts 1, label 1 -> hit
    logits[0, 1, 0] = 1.0  # predicts 0, label 2 -> miss
    labels = torch.tensor([[IGNORE_INDEX, 1, 2, IGNORE_INDEX]])
    tokens = supervised_tokens(logits, labels)
    assert token_hits(tokens).tolist() == [True, False]
    key_mask = torch.tensor([[False, False, True, False]])
    assert tokens.select(key_mask).tolist() == [False, True]


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="disagree"):
        pkt_loss(torch.zeros(1, 4, 3), torch.zeros(1, 5, dtype=torch.long), torch.ones(1, 5))
