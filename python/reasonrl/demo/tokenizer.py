"""A character-level tokenizer built locally with `tokenizers`, wrapped as a transformers
tokenizer, so the demo and the tests need no model hub."""

from __future__ import annotations

import string

from tokenizers import AddedToken, Tokenizer, decoders, models
from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
# The R1 template tags are single tokens: the demo's sequences are mostly tags and digits, and a
# tag spelled out character by character would be a third of every completion.
TEMPLATE_TAGS = ("<think>", "</think>", "<answer>", "</answer>")
DEFAULT_ALPHABET = string.ascii_letters + string.digits + " .,:;!?+-*/=()'\n"


def build_char_tokenizer(alphabet: str = DEFAULT_ALPHABET) -> PreTrainedTokenizerFast:
    """One token per character of `alphabet`, plus pad/bos/eos/unk and the template tags."""
    specials = [PAD, BOS, EOS, UNK]
    vocab = {token: i for i, token in enumerate(specials)}
    for ch in dict.fromkeys(alphabet):
        vocab.setdefault(ch, len(vocab))
    # BPE with no merges is exactly character-level: every character is its own token.
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK))
    core.decoder = decoders.Fuse()
    core.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in specials])
    core.add_tokens([AddedToken(t, normalized=False, special=False) for t in TEMPLATE_TAGS])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token=PAD, bos_token=BOS, eos_token=EOS, unk_token=UNK
    )
    tokenizer.padding_side = "left"  # generation appends on the right
    return tokenizer
