"""The HF rollout backend's decode loop against Hugging Face `generate`, and its sampling law."""

from __future__ import annotations

import pytest
import torch

from reasonrl.demo import DemoSettings, build_char_tokenizer
from reasonrl.demo.run import build_tiny_model
from reasonrl.errors import InvalidInputError
from reasonrl.rollout import HFRollout, SamplingParams
from reasonrl.rollout.hf import _pick_tokens

PROMPTS = ["12+34=?<think>", "5+6=?<think>", "99+1=?", "7=?<think>"]  # different lengths: left padding


@pytest.fixture(scope="module")
def tokenizer():
    return build_char_tokenizer()


@pytest.fixture(scope="module")
def model(tokenizer):
    """Random weights with a large spread, so greedy text varies from token to token."""
    torch.manual_seed(0)
    model = build_tiny_model(len(tokenizer), tokenizer, DemoSettings(hidden_size=32, layers=2, heads=2))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.5)
    return model.eval()


@pytest.fixture
def early_eos(model, tokenizer):
    """Makes 'K' (frequent in this model's output) an end token too, so rows end at different
    steps and the loop must drop finished rows from its batch."""
    before = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("K")]
    yield
    model.generation_config.eos_token_id = before


def rows(out):
    """Each row's completion tokens (mask applied), its truncation flag and its prompt index."""
    return [
        (out.completion_ids[r][out.completion_mask[r].bool()].tolist(), bool(out.truncated[r]), int(out.prompt_index[r]))
        for r in range(len(out.texts))
    ]


@pytest.mark.parametrize("lean", [True, False], ids=["lean-step", "model-forward"])
@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("prompts", [PROMPTS, ["12+34=?<think>", "20+99=?<think>", "47+38=?<think>"]], ids=["padded", "unpadded"])
def test_greedy_decode_matches_hf_generate(model, tokenizer, early_eos, n, prompts, lean):
    greedy = SamplingParams(max_new_tokens=16, greedy=True)
    rollout = HFRollout(model, tokenizer, lean_decode=lean)
    ours = rollout.generate(prompts, n, greedy)
    assert rollout.decode_path == ("lean" if lean else "forward (lean_decode=False)")
    reference = HFRollout(model, tokenizer, engine="generate").generate(prompts, n, greedy)
    assert rows(ours) == rows(reference)
    assert ours.texts == reference.texts
    ended = [not truncated for _, truncated, _ in rows(ours)]
    assert any(ended) and not all(ended), "the test needs rows that end early and rows that run out"
    assert torch.equal(ours.prompt_ids, reference.prompt_ids) and torch.equal(ours.prompt_mask, reference.prompt_mask)


def test_rows_after_their_end_are_padding_and_the_width_is_the_longest_row(model, tokenizer, early_eos):
    out = HFRollout(model, tokenizer).generate(PROMPTS, 2, SamplingParams(max_new_tokens=16, greedy=True))
    lengths = out.completion_mask.sum(dim=1)
    assert out.completion_ids.shape[1] == int(lengths.max())
    for r in range(len(out.texts)):
        tail = out.completion_ids[r, int(lengths[r]) :]
        assert (tail == tokenizer.pad_token_id).all()


def test_chunked_decoding_gives_the_same_rows(model, tokenizer, early_eos):
    greedy = SamplingParams(max_new_tokens=12, greedy=True)
    whole = HFRollout(model, tokenizer).generate(PROMPTS, 2, greedy)
    # batch_size 3 rounds down to one prompt group (2 rows) per chunk.
    chunked = HFRollout(model, tokenizer, batch_size=3).generate(PROMPTS, 2, greedy)
    assert rows(whole) == rows(chunked)


def test_stop_strings_end_a_row_without_marking_it_truncated(model, tokenizer):
    greedy = SamplingParams(max_new_tokens=16, greedy=True)
    free = HFRollout(model, tokenizer).generate(PROMPTS, 1, greedy)
    stop = free.texts[0][3:5]  # two characters the first row is known to produce
    stopped = HFRollout(model, tokenizer).generate(PROMPTS, 1, SamplingParams(max_new_tokens=16, greedy=True, stop=(stop,)))
    assert stopped.texts[0] == free.texts[0][: free.texts[0].index(stop) + len(stop)]
    assert not stopped.truncated[0]
    for text, full in zip(stopped.texts, free.texts):
        assert full.startswith(text)  # the stop only cuts, never changes a row
    # The stopped row's mask ends at the stop string's last token: the padding after it is not
    # part of the completion (it would be trained on and counted in its length).
    length = int(stopped.completion_mask[0].sum())
    assert tokenizer.decode(stopped.completion_ids[0, :length]) == stopped.texts[0]
    assert length == len(tokenizer(stopped.texts[0], add_special_tokens=False)["input_ids"])
    assert (stopped.completion_ids[0, length:] == tokenizer.pad_token_id).all()
    assert int(stopped.lengths[0]) == length


@pytest.mark.parametrize("stop", ["\n", " ", "b\n"])
def test_a_stop_string_ending_in_whitespace_ends_the_row_there(model, tokenizer, stop):
    """A row that stopped on "\n" is finished, not truncated, and the padding after it is out
    of its mask (the text after a stop string is the padding's, whose decoding is empty)."""
    rollout = HFRollout(model, tokenizer)
    pad = tokenizer.pad_token_id
    stopped = tokenizer(f"a{stop}", add_special_tokens=False)["input_ids"]
    running = tokenizer("abcde", add_special_tokens=False)["input_ids"]
    ids = torch.tensor([stopped + [pad] * (5 - len(stopped)), running])
    mask, truncated = rollout._completion_mask(ids, SamplingParams(max_new_tokens=5, stop=(stop,)))
    assert mask[0].tolist() == [1] * len(stopped) + [0] * (5 - len(stopped)) and not truncated[0]
    assert mask[1].tolist() == [1] * 5 and truncated[1]  # no stop string in it: it ran out of tokens


def test_a_stop_string_before_a_rows_last_tokens_is_not_where_it_stopped(model, tokenizer):
    """Only the row's last tokens, the window the decode loop checks, tell a stop: a row that ran
    to the token limit is truncated even if its text holds the stop string earlier (the decode
    loop can miss one there, e.g. where a tokenizer decodes a window differently)."""
    ids = torch.tensor([tokenizer("abcde", add_special_tokens=False)["input_ids"]])
    mask, truncated = HFRollout(model, tokenizer)._completion_mask(ids, SamplingParams(max_new_tokens=5, stop=("b",)))
    assert truncated[0] and mask[0].tolist() == [1] * 5


def test_sampled_first_tokens_follow_the_tempered_distribution(model, tokenizer):
    torch.manual_seed(1)
    n, temperature = 4000, 0.7
    rollout = HFRollout(model, tokenizer)
    out = rollout.generate(PROMPTS[:1], n, SamplingParams(max_new_tokens=1, temperature=temperature))
    encoded = tokenizer(PROMPTS[:1], return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        logits = model(**encoded).logits[0, -1]
    expected = torch.softmax(logits / temperature, dim=-1)
    observed = torch.bincount(out.completion_ids[:, 0], minlength=expected.numel()).float() / n
    # Every frequency within 4.5 standard errors of its probability.
    stderr = (expected * (1 - expected) / n).sqrt().clamp(min=1e-4)
    assert ((observed - expected).abs() <= 4.5 * stderr + 1e-3).all()


def test_top_p_samples_only_from_the_nucleus():
    torch.manual_seed(0)
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).repeat(2000, 1)
    picked = _pick_tokens(logits, SamplingParams(top_p=0.75))
    # 0.5 < 0.75 so token 1 is needed; 0.5 + 0.3 ≥ 0.75 so tokens 2 and 3 are out.
    assert set(picked.tolist()) == {0, 1}
    share = (picked == 0).float().mean().item()
    assert abs(share - 0.5 / 0.8) < 0.05


def test_bad_settings_are_named(model, tokenizer):
    with pytest.raises(InvalidInputError, match="engine"):
        HFRollout(model, tokenizer, engine="fast")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="batch_size"):
        HFRollout(model, tokenizer, batch_size=0)


def test_rollouts_can_feed_a_forward_that_records_gradients(model, tokenizer):
    # Sampling runs in inference mode; its tensors must come out as ordinary ones, or the
    # trainer's forward (which saves the token ids for the embedding's backward) would fail.
    out = HFRollout(model, tokenizer).generate(PROMPTS[:2], 2, SamplingParams(max_new_tokens=4))
    assert not any(t.is_inference() for t in (out.prompt_ids, out.prompt_mask, out.completion_ids, out.completion_mask, out.truncated, out.prompt_index))
    model.zero_grad(set_to_none=True)
    model(input_ids=torch.cat([out.prompt_ids, out.completion_ids], dim=1)).logits.sum().backward()
    assert model.model.embed_tokens.weight.grad is not None
