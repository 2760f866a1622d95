"""Decoding latent codes into sentences: greedy, beam search, and top-k / nucleus
sampling, one word at a time with the decoder's cached LSTM state.

Bowman et al. (2016), "Generating Sentences from a Continuous Space": sentences are
decoded from codes drawn from the prior, taken from a posterior, or spaced on the line
between two posterior means (``fairseq_seqvae.hub.SeqVAE`` picks the codes).
"""

import math
from typing import Dict, List

import torch
import torch.nn.functional as F
from torch import Tensor

STRATEGIES = ("greedy", "beam", "sample")
DEFAULT_MAX_LEN = 200
DEFAULT_BATCH_SIZE = 64


@torch.no_grad()
def decode(
    model,
    z: Tensor,
    strategy: str = "greedy",
    beam: int = 5,
    sampling_topk: int = 0,
    sampling_topp: float = 0.0,
    temperature: float = 1.0,
    lenpen: float = 1.0,
    max_len: int = DEFAULT_MAX_LEN,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> List[Tensor]:
    """Decodes one sentence per latent code, one word at a time with the decoder's
    cached LSTM state (the prefix is never re-run).

    Every sentence has at least one word, never <pad> or BOS; one that has not ended
    after ``max_len`` words is cut there (EOS is forced). Puts ``model`` in eval mode.

    Args:
        model: a ``seqvae_lstm`` model
        z: N x Z latent codes (Z = the model's latent dim; N x 0 for an LSTM LM)
        strategy: "greedy" (argmax), "beam" (beam search of width ``beam``, scored by
            the sum of log-probabilities divided by (words + 1) ** ``lenpen``, as in
            fairseq) or "sample" (ancestral sampling from the torch RNG)
        sampling_topk: "sample": draw only from the k most likely tokens (0: all)
        sampling_topp: "sample": draw only from the smallest set of most likely tokens
            whose probability reaches p (nucleus sampling; 0: off); applied after top-k
        temperature: divides the logits before the softmax
        max_len: most words per sentence (EOS not counted)
        batch_size: latent codes decoded together (each with ``beam`` hypotheses)
    Returns:
        N 1-D LongTensors on the CPU: word ids, without BOS and EOS
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    for name, value in (("beam", beam), ("max_len", max_len), ("batch_size", batch_size)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if sampling_topk < 0:
        raise ValueError(f"sampling_topk must be 0 (off) or positive, got {sampling_topk}")
    if not 0.0 <= sampling_topp <= 1.0:
        raise ValueError(f"sampling_topp must be in [0, 1] (0: off), got {sampling_topp}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    latent_dim = model.encoder.latent_dim
    if z.dim() != 2 or z.size(1) != latent_dim:
        raise ValueError(f"z must be N x {latent_dim} (the model's latent dim), "
                         f"got shape {tuple(z.shape)}")

    model.eval()
    step = _Stepper(model, max_len, temperature)
    hypos: List[Tensor] = []
    for chunk in z.split(batch_size):
        if strategy == "beam":
            hypos += _beam_search(step, chunk, beam, lenpen)
        else:
            pick = (_argmax if strategy == "greedy"
                    else lambda lprobs: _sample(lprobs, sampling_topk, sampling_topp))
            hypos += _one_per_code(step, chunk, pick)
    return hypos


class _Stepper:
    """Next-token log-probabilities from the cached decoder state, with the tokens the
    decoder may not emit at this step masked to -inf (not renormalized: beam scores
    are the model's own log-probabilities)."""

    def __init__(self, model, max_len: int, temperature: float):
        self.decoder = model.decoder
        self.max_len = max_len
        self.temperature = temperature
        d = model.decoder.dictionary
        self.bos, self.pad, self.eos = d.bos(), d.pad(), d.eos()

    def new_prefixes(self, rows: int, device) -> Tensor:
        """rows x (max_len + 2): BOS, then room for max_len words and EOS."""
        tokens = torch.full((rows, self.max_len + 2), self.pad, dtype=torch.long, device=device)
        tokens[:, 0] = self.bos
        return tokens

    def __call__(self, tokens: Tensor, t: int, encoder_out: Dict[str, Tensor],
                 state: Dict) -> Tensor:
        """Log-probabilities (rows x V, float32) of the token after ``tokens[:, :t + 1]``;
        the decoder reads only the last of them and ``state`` holds the rest."""
        logits, _ = self.decoder(tokens[:, : t + 1], encoder_out, incremental_state=state)
        lprobs = F.log_softmax(logits[:, -1].float() / self.temperature, dim=-1)
        lprobs[:, [self.pad, self.bos]] = -math.inf
        if t == 0:  # training data holds no empty sentence (fairseq's min_len 1)
            lprobs[:, self.eos] = -math.inf
        elif t == self.max_len:  # max_len words so far: the sentence must end
            eos_lprobs = lprobs[:, self.eos].clone()
            lprobs.fill_(-math.inf)
            lprobs[:, self.eos] = eos_lprobs
        return lprobs


def _argmax(lprobs: Tensor) -> Tensor:
    return lprobs.argmax(dim=-1)


def _sample(lprobs: Tensor, topk: int, topp: float) -> Tensor:
    """One token per row from softmax(lprobs) restricted to the top-k, then to the
    nucleus of mass ``topp``."""
    if 0 < topk < lprobs.size(-1):
        kth = lprobs.topk(topk, dim=-1).values[:, -1:]  # rows x 1
        lprobs = lprobs.masked_fill(lprobs < kth, -math.inf)
    if 0 < topp < 1:
        probs = lprobs.softmax(dim=-1)
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs  # rows x V
        # the most likely tokens until their mass reaches p (the first is always kept)
        sorted_outside = mass_before >= topp
        outside = torch.empty_like(sorted_outside).scatter_(-1, order, sorted_outside)
        lprobs = lprobs.masked_fill(outside, -math.inf)
    return torch.multinomial(lprobs.softmax(dim=-1), 1).squeeze(-1)


def _one_per_code(step: _Stepper, z: Tensor, pick) -> List[Tensor]:
    """Greedy or sampled decoding: one hypothesis per latent code."""
    rows = z.size(0)
    encoder_out = {"z": z}
    tokens = step.new_prefixes(rows, z.device)
    lengths = torch.full((rows,), step.max_len, dtype=torch.long)
    ended = torch.zeros(rows, dtype=torch.bool, device=z.device)
    state: Dict = {}
    for t in range(step.max_len + 1):
        nxt = pick(step(tokens, t, encoder_out, state)).masked_fill(ended, step.pad)
        tokens[:, t + 1] = nxt
        now = nxt.eq(step.eos)
        lengths[now.cpu()] = t
        ended |= now
        if ended.all():
            break
    return [tokens[i, 1:1 + lengths[i]].cpu() for i in range(rows)]


def _beam_search(step: _Stepper, z: Tensor, beam: int, lenpen: float) -> List[Tensor]:
    """Beam search for each latent code; returns the best finished hypothesis.

    Each step expands every live hypothesis by every token and ranks the candidates
    per code. A candidate ending in EOS among the best ``beam`` is finished (so beam 1
    is greedy decoding); the best ``beam`` others stay live. A code is done once it
    has ``beam`` finished hypotheses, or after ``max_len`` words (EOS forced).
    """
    rows, k = z.size(0), beam
    encoder_out = {"z": z.repeat_interleave(k, dim=0)}  # (rows * k) x Z
    tokens = step.new_prefixes(rows * k, z.device)
    scores = torch.zeros(rows, k, device=z.device)  # summed log-probs, rows x k
    scores[:, 1:] = -math.inf  # the k prefixes are all "BOS": start from one
    offsets = (torch.arange(rows, device=z.device) * k).unsqueeze(1)  # rows x 1
    finished: List[List] = [[] for _ in range(rows)]  # (normalized score, word ids)
    state: Dict = {}
    for t in range(step.max_len + 1):
        lprobs = step(tokens, t, encoder_out, state)  # (rows * k) x V
        vocab = lprobs.size(-1)
        cand = (scores.unsqueeze(-1) + lprobs.view(rows, k, vocab)).view(rows, k * vocab)
        cand_scores, cand_idx = cand.topk(2 * k, dim=-1)  # rows x 2k, best first
        cand_src = cand_idx // vocab + offsets  # the prefix each candidate extends
        cand_tok = cand_idx % vocab
        ends = cand_tok.eq(step.eos) & cand_scores.gt(-math.inf)
        for r, j in ends[:, :k].nonzero().tolist():
            if len(finished[r]) < k:
                words = tokens[cand_src[r, j], 1:t + 1].cpu()
                finished[r].append((cand_scores[r, j].item() / (t + 1) ** lenpen, words))
        if t == step.max_len or all(len(f) >= k for f in finished):
            break
        # at most k candidates end in EOS (one per prefix), so k others remain
        live = ends.byte().sort(dim=-1, stable=True).indices[:, :k]  # rows x k, best first
        src = cand_src.gather(1, live).view(-1)
        step.decoder.reorder_incremental_state(state, src)
        tokens = tokens.index_select(0, src)
        tokens[:, t + 1] = cand_tok.gather(1, live).view(-1)
        scores = cand_scores.gather(1, live)
    return [max(f, key=lambda hypo: hypo[0])[1] for f in finished]
