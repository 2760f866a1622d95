"""LSTM sequence VAE whose encoder pools all hidden states before the posterior.

Long, Cao & Cheung (2019), "Preventing Posterior Collapse in Sequence VAEs with
Pooling" (arXiv 1911.03976). The decoder follows He et al. (2019)'s reference code:
z is concatenated to every input embedding and also sets the initial LSTM state.
``--pooling last`` is the standard sequence VAE (Bowman et al. 2016) and
``--latent-dim 0`` the LSTM language model with the identical decoder.
"""

import hashlib
import logging
import os
from dataclasses import dataclass, field
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from fairseq import checkpoint_utils
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.models import (
    FairseqEncoder,
    FairseqEncoderDecoderModel,
    FairseqIncrementalDecoder,
    register_model,
    register_model_architecture,
)
from fairseq.utils import safe_getattr
from torch import Tensor
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from fairseq_seqvae.modules.dropout import Dropout
from fairseq_seqvae.modules.fixed_scale_batch_norm import FixedScaleBatchNorm
from fairseq_seqvae.modules.gaussian import reparameterize
from fairseq_seqvae.modules.poolers import POOLERS

logger = logging.getLogger(__name__)

DEFAULT_MAX_POSITIONS = 100000


@dataclass
class SeqVAELSTMConfig(FairseqDataclass):
    encoder_embed_dim: int = field(
        default=256, metadata={"help": "encoder word embedding size (default 256)"}
    )
    encoder_hidden_dim: int = field(
        default=256, metadata={"help": "encoder LSTM hidden size per direction (default 256)"}
    )
    encoder_layers: int = field(
        default=1, metadata={"help": "number of encoder LSTM layers (default 1)"}
    )
    encoder_bidirectional: bool = field(
        default=False,
        metadata={"help": "bidirectional encoder LSTM (default off); see "
                  "--encoder-merge for how its two directions are combined"},
    )
    encoder_merge: ChoiceEnum(["concat", "mean"]) = field(
        default="concat",
        metadata={"help": "bidirectional encoder: how the two directions' states are "
                  "combined at each position (and in the final state) before pooling: "
                  "concat (2 x --encoder-hidden-dim features) or mean (their average, "
                  "--encoder-hidden-dim features; Xu, Cheung & Cao 2020's code). "
                  "Default concat"},
    )
    encoder_dropout: float = field(
        default=0.0,
        metadata={"help": "dropout on encoder embeddings and on the pooled feature "
                  "(default 0, as in He et al. 2019)"},
    )
    pooling: ChoiceEnum(sorted(POOLERS)) = field(
        default="max",
        metadata={"help": "how the encoder summarizes its hidden states before the "
                  "posterior: max / mean (masked, over all states; Long et al. 2019) or "
                  "last (final non-pad state: the standard VAE). Default max"},
    )
    no_posterior_bias: bool = field(
        default=False,
        metadata={"help": "the linear map from the pooled feature to the posterior's "
                  "mean and log-variance has no bias (Xu, Cheung & Cao 2020's code); "
                  "default off: it has one"},
    )
    latent_dim: int = field(
        default=32,
        metadata={"help": "size of the Gaussian latent z (default 32); 0 gives an LSTM "
                  "language model with the same decoder (no encoder, no KL)"},
    )
    bn_gamma: float = field(
        default=0.0,
        metadata={"help": "BN-VAE (Zhu et al. 2020): batch-normalize the posterior mean "
                  "with this fixed scale (and a learnable shift), which keeps the "
                  "batch-mean KL in training at least latent-dim * gamma^2 / 2 nats per "
                  "sentence while the raw means vary across the batch by much more than "
                  "BN's eps (1e-5). Default 0 (off)"},
    )
    init_encoder_from: Optional[str] = field(
        default=None,
        metadata={"help": "checkpoint whose encoder (embedding, LSTM, posterior layer) "
                  "initializes this model's encoder; the decoder starts fresh (Li et al. "
                  "2019's autoencoder pretraining). fairseq-train reads it whenever it "
                  "builds the model (a resumed run then loads its own checkpoint over "
                  "it); evaluation does not. Default none"},
    )
    decoder_embed_dim: int = field(
        default=256, metadata={"help": "decoder word embedding size (default 256)"}
    )
    decoder_hidden_dim: int = field(
        default=256, metadata={"help": "decoder LSTM hidden size (default 256)"}
    )
    decoder_layers: int = field(
        default=1, metadata={"help": "number of decoder LSTM layers (default 1)"}
    )
    decoder_dropout_in: float = field(
        default=0.5,
        metadata={"help": "dropout on decoder input embeddings (default 0.5)"},
    )
    decoder_dropout_out: float = field(
        default=0.5,
        metadata={"help": "dropout on decoder LSTM outputs before the softmax (default 0.5)"},
    )
    word_dropout: float = field(
        default=0.0,
        metadata={"help": "probability of replacing each decoder input word by <unk> "
                  "during training (Bowman et al. 2016; default 0)"},
    )
    init_scale: float = field(
        default=0.01,
        metadata={"help": "LSTM and linear weights start uniform in +-init_scale and "
                  "embeddings in +-10 x init_scale, as in He et al. 2019's code "
                  "(default 0.01); 0 keeps PyTorch's default init"},
    )


def dictionary_fingerprint(dictionary) -> Tensor:
    """int64 tensor: the first 8 bytes of sha256 over the dictionary's symbols."""
    digest = hashlib.sha256("\n".join(dictionary.symbols).encode("utf-8")).digest()
    return torch.tensor(int.from_bytes(digest[:8], "little", signed=True))


def state_mismatch(mine: Dict[str, Tensor], theirs: Dict[str, Tensor]) -> str:
    """'' if two state dicts have the same keys and shapes, else what differs."""
    mine = {k: tuple(v.shape) for k, v in mine.items()}
    theirs = {k: tuple(v.shape) for k, v in theirs.items()}
    if mine == theirs:
        return ""
    differ = sorted(k for k in mine.keys() & theirs.keys() if mine[k] != theirs[k])
    return (f"missing {sorted(mine.keys() - theirs.keys())[:5]}, unexpected "
            f"{sorted(theirs.keys() - mine.keys())[:5]}, other shapes {differ[:5]}")


def _uniform_init(module: nn.Module, scale: float):
    for name, param in module.named_parameters():
        bound = 10 * scale if "embed_tokens" in name else scale
        nn.init.uniform_(param, -bound, bound)
    for sub in module.modules():
        if isinstance(sub, nn.Embedding) and sub.padding_idx is not None:
            nn.init.zeros_(sub.weight[sub.padding_idx])


class SeqVAEEncoder(FairseqEncoder):
    """Embedding + LSTM over the source, a pooler, and a linear map to the
    mean and log-variance of q(z|x)."""

    def __init__(
        self,
        dictionary,
        embed_dim: int,
        hidden_dim: int,
        num_layers: int,
        bidirectional: bool,
        dropout: float,
        pooling: str,
        latent_dim: int,
        bn_gamma: float = 0.0,
        merge: str = "concat",
        posterior_bias: bool = True,
    ):
        super().__init__(dictionary)
        self.latent_dim = latent_dim
        self.pool = POOLERS[pooling]
        self.padding_idx = dictionary.pad()
        if latent_dim == 0:
            return
        self.embed_tokens = nn.Embedding(len(dictionary), embed_dim, self.padding_idx)
        self.dropout = Dropout(dropout)
        self.lstm = nn.LSTM(
            embed_dim,
            hidden_dim,
            num_layers=num_layers,
            bidirectional=bidirectional,
            batch_first=True,
        )
        self.merge_mean = bidirectional and merge == "mean"
        self.feature_dim = hidden_dim * (2 if bidirectional and not self.merge_mean else 1)
        self.to_posterior = nn.Linear(self.feature_dim, 2 * latent_dim, bias=posterior_bias)
        self.mean_bn = FixedScaleBatchNorm(latent_dim, bn_gamma) if bn_gamma > 0 else None

    def forward(self, src_tokens: Tensor, src_lengths: Tensor, sample_z: bool = True):
        """
        Args:
            src_tokens: B x T, right-padded
            src_lengths: B
            sample_z: draw z from q(z|x) (reparameterized); else z is the mean
        Returns:
            dict with ``z``, ``mean``, ``logvar`` (B x Z) and ``pooled`` (B x C)
        """
        bsz = src_tokens.size(0)
        if self.latent_dim == 0:
            empty = src_tokens.new_zeros(bsz, 0, dtype=torch.float)
            return {"z": empty, "mean": empty, "logvar": empty, "pooled": empty}

        x = self.dropout(self.embed_tokens(src_tokens))  # B x T x E
        padding_mask = src_tokens.eq(self.padding_idx)  # B x T
        if self.lstm.bidirectional:
            # packing gives the backward direction each sentence's own end to start at
            packed = pack_padded_sequence(
                x, src_lengths.cpu(), batch_first=True, enforce_sorted=False
            )
            packed_out, (h_n, _) = self.lstm(packed)
            states, _ = pad_packed_sequence(
                packed_out, batch_first=True, total_length=src_tokens.size(1)
            )  # B x T x 2H, zeros at pads
            # h_n: (layers * 2) x B x H -> last layer, directions side by side
            final = h_n[-2:].transpose(0, 1).reshape(bsz, -1)  # B x 2H
            if self.merge_mean:
                states = states.view(bsz, states.size(1), 2, -1).mean(dim=2)  # B x T x H
                final = final.view(bsz, 2, -1).mean(dim=1)  # B x H
        else:
            # right padding only trails real tokens, so real positions never see it;
            # the padded (fused) LSTM is much faster on CPU than a packed one
            states, _ = self.lstm(x)  # B x T x H
            final = states[torch.arange(bsz, device=x.device), src_lengths - 1]  # B x H
            states = states.masked_fill(padding_mask.unsqueeze(-1), 0.0)
        pooled = self.dropout(self.pool(states, padding_mask, final))
        mean, logvar = self.to_posterior(pooled).chunk(2, dim=-1)  # B x Z each
        if self.mean_bn is not None:
            mean = self.mean_bn(mean)
        z = reparameterize(mean, logvar) if sample_z else mean
        return {"z": z, "mean": mean, "logvar": logvar, "pooled": pooled}

    def reorder_encoder_out(self, encoder_out: Dict[str, Tensor], new_order: Tensor):
        return {k: v.index_select(0, new_order) for k, v in encoder_out.items()}

    def max_positions(self):
        return DEFAULT_MAX_POSITIONS


class SeqVAEDecoder(FairseqIncrementalDecoder):
    """Autoregressive LSTM conditioned on z at every step and through its initial state."""

    def __init__(
        self,
        dictionary,
        embed_dim: int,
        hidden_dim: int,
        num_layers: int,
        latent_dim: int,
        dropout_in: float,
        dropout_out: float,
        word_dropout: float,
    ):
        super().__init__(dictionary)
        self.num_layers = num_layers
        self.hidden_dim = hidden_dim
        self.latent_dim = latent_dim
        self.word_dropout = word_dropout
        self.unk_idx = dictionary.unk()
        self.padding_idx = dictionary.pad()
        self.embed_tokens = nn.Embedding(len(dictionary), embed_dim, self.padding_idx)
        self.dropout_in = Dropout(dropout_in)
        self.dropout_out = Dropout(dropout_out)
        self.lstm = nn.LSTM(embed_dim + latent_dim, hidden_dim, num_layers, batch_first=True)
        # z -> initial cell state of every layer; h0 = tanh(c0) (He et al. 2019)
        self.latent_to_state = (
            nn.Linear(latent_dim, num_layers * hidden_dim) if latent_dim > 0 else None
        )
        self.output_projection = nn.Linear(hidden_dim, len(dictionary))

    def forward(
        self,
        prev_output_tokens: Tensor,
        encoder_out: Dict[str, Tensor],
        incremental_state: Optional[Dict[str, Dict[str, Optional[Tensor]]]] = None,
        features_only: bool = False,
    ):
        """
        Args:
            prev_output_tokens: B x T, BOS then the words, right-padded
            encoder_out: the encoder's dict (``z``: B x Z)
            incremental_state: cache for step-by-step decoding
            features_only: return LSTM outputs (B x T x H, before output dropout)
                instead of logits
        Returns:
            (B x T x V logits or B x T x H features, {"attn": None})
        """
        x = self.extract_features(prev_output_tokens, encoder_out, incremental_state)
        if not features_only:
            x = self.output_layer(x)
        return x, {"attn": None}

    def extract_features(self, prev_output_tokens, encoder_out, incremental_state=None):
        z = encoder_out["z"]  # B x Z
        if incremental_state is not None:
            prev_output_tokens = prev_output_tokens[:, -1:]
        bsz, tgt_len = prev_output_tokens.shape

        tokens = prev_output_tokens
        if self.training and self.word_dropout > 0:
            drop = torch.rand(tokens.shape, device=tokens.device) < self.word_dropout
            drop[:, 0] = False  # keep BOS
            tokens = tokens.masked_fill(drop & tokens.ne(self.padding_idx), self.unk_idx)
        x = self.dropout_in(self.embed_tokens(tokens))  # B x T x E
        if self.latent_dim > 0:
            x = torch.cat([x, z.to(x).unsqueeze(1).expand(bsz, tgt_len, -1)], dim=-1)

        state = None
        if incremental_state is not None:
            cached = self.get_incremental_state(incremental_state, "cached_state")
            if cached is not None:
                state = (cached["h"], cached["c"])
        if state is None:
            state = self.initial_state(z, bsz, x)
        # right padding only trails real tokens, so real positions never see it
        out, (h, c) = self.lstm(x, state)  # B x T x H
        if incremental_state is not None:
            self.set_incremental_state(incremental_state, "cached_state", {"h": h, "c": c})
        return out

    def initial_state(self, z: Tensor, bsz: int, like: Tensor):
        if self.latent_to_state is None:
            return None
        # B x (L * H) -> L x B x H
        c0 = self.latent_to_state(z.to(like)).view(bsz, self.num_layers, self.hidden_dim)
        c0 = c0.transpose(0, 1).contiguous()
        return torch.tanh(c0), c0

    def output_layer(self, features: Tensor) -> Tensor:
        """Output dropout and projection to the vocabulary: ... x H -> ... x V. The
        criterion calls it on real target positions only."""
        return self.output_projection(self.dropout_out(features))

    def reorder_incremental_state(
        self,
        incremental_state: Dict[str, Dict[str, Optional[Tensor]]],
        new_order: Tensor,
    ):
        cached = self.get_incremental_state(incremental_state, "cached_state")
        if cached is None:
            return
        # L x B x H: batch is dim 1
        reordered = {k: v.index_select(1, new_order) for k, v in cached.items()}
        self.set_incremental_state(incremental_state, "cached_state", reordered)

    def max_positions(self):
        return DEFAULT_MAX_POSITIONS


@register_model("seqvae_lstm", dataclass=SeqVAELSTMConfig)
class SeqVAELSTMModel(FairseqEncoderDecoderModel):
    """Sequence VAE: pooled LSTM encoder, Gaussian posterior, LSTM decoder."""

    def __init__(self, encoder, decoder, dictionary_path="dict.txt"):
        super().__init__(encoder, decoder)
        self.num_updates = 0
        # which half each parameter belongs to, for --optimizer encoder_decoder
        for half in ("encoder", "decoder"):
            for param in getattr(self, half).parameters():
                param.param_group = half
        # travels in the checkpoint, so data binarized with another dict.txt of the
        # same size is caught on load instead of silently scored
        self.register_buffer("dictionary_hash", dictionary_fingerprint(decoder.dictionary))
        # [phase, previous validation MI] of the task's aggressive training (He et al.
        # 2019). A buffer because fairseq 0.12.2's trainer saves the task's state in
        # checkpoints but never restores it on resume; model buffers are restored, and
        # broadcast to every rank
        self.register_buffer("aggressive_state", torch.zeros(2, dtype=torch.float64))
        self.dictionary_path = dictionary_path

    @classmethod
    def build_model(cls, cfg: SeqVAELSTMConfig, task):
        if cfg.bn_gamma < 0:
            raise ValueError(f"--bn-gamma must be >= 0 (0 turns BN-VAE off), got {cfg.bn_gamma}")
        if cfg.bn_gamma > 0 and cfg.latent_dim == 0:
            raise ValueError("--bn-gamma needs a latent variable (--latent-dim > 0)")
        if cfg.init_encoder_from and cfg.latent_dim == 0:
            raise ValueError("--init-encoder-from needs a model with an encoder "
                             "(--latent-dim > 0)")
        dictionary = task.source_dictionary
        encoder = SeqVAEEncoder(
            dictionary,
            embed_dim=cfg.encoder_embed_dim,
            hidden_dim=cfg.encoder_hidden_dim,
            num_layers=cfg.encoder_layers,
            bidirectional=cfg.encoder_bidirectional,
            dropout=cfg.encoder_dropout,
            pooling=cfg.pooling,
            latent_dim=cfg.latent_dim,
            bn_gamma=cfg.bn_gamma,
            merge=cfg.encoder_merge,
            posterior_bias=not cfg.no_posterior_bias,
        )
        decoder = SeqVAEDecoder(
            dictionary,
            embed_dim=cfg.decoder_embed_dim,
            hidden_dim=cfg.decoder_hidden_dim,
            num_layers=cfg.decoder_layers,
            latent_dim=cfg.latent_dim,
            dropout_in=cfg.decoder_dropout_in,
            dropout_out=cfg.decoder_dropout_out,
            word_dropout=cfg.word_dropout,
        )
        model = cls(encoder, decoder, getattr(task, "dictionary_path", "dict.txt"))
        if cfg.init_scale > 0:
            _uniform_init(model, cfg.init_scale)
        return model

    def forward(
        self,
        src_tokens: Tensor,
        src_lengths: Tensor,
        prev_output_tokens: Tensor,
        features_only: bool = False,
        sample_z: bool = True,
    ):
        """Encodes the source, samples z and teacher-forces the decoder.

        Returns:
            (decoder output B x T x V, or B x T x H with ``features_only``;
             extra dict holding the encoder's ``z``, ``mean``, ``logvar``, ``pooled``)
        """
        encoder_out = self.encoder(src_tokens, src_lengths, sample_z=sample_z)
        x, extra = self.decoder(prev_output_tokens, encoder_out, features_only=features_only)
        extra.update(encoder_out)
        return x, extra

    def set_num_updates(self, num_updates):
        """fairseq calls this every step and on checkpoint load; the KL schedule reads it."""
        super().set_num_updates(num_updates)
        self.num_updates = num_updates

    def load_state_dict(self, state_dict, strict=True, model_cfg=None, args=None):
        if "aggressive_state" not in state_dict:  # a checkpoint from before the buffer
            state_dict = {**state_dict, "aggressive_state": self.aggressive_state}
        key = "decoder.embed_tokens.weight"
        theirs_size = state_dict[key].size(0) if key in state_dict else None
        if theirs_size is not None and (
            theirs_size != len(self.decoder.dictionary)
            or (
                "dictionary_hash" in state_dict
                and not torch.equal(state_dict["dictionary_hash"], self.dictionary_hash)
            )
        ):
            raise ValueError(
                f"dictionary mismatch: the checkpoint was trained with another dictionary "
                f"({theirs_size} symbols) than {self.dictionary_path} "
                f"({len(self.decoder.dictionary)} symbols); use the data directory "
                f"(dict.txt) the checkpoint was trained with"
            )
        mismatch = state_mismatch(self.state_dict(), state_dict)
        if strict and mismatch:
            raise ValueError(
                "checkpoint does not match this seqvae_lstm model (another architecture "
                f"or size?): {mismatch}"
            )
        return super().load_state_dict(state_dict, strict, model_cfg, args)

    def load_pretrained_encoder(self, path: str):
        """Copies the encoder of the checkpoint at ``path`` (``--init-encoder-from``)
        into this model; the decoder keeps its fresh initialization."""
        if not os.path.isfile(path):
            raise FileNotFoundError(f"--init-encoder-from: no checkpoint at {path}")
        theirs = checkpoint_utils.load_checkpoint_to_cpu(path)["model"]
        if "dictionary_hash" in theirs and not torch.equal(
            theirs["dictionary_hash"], self.dictionary_hash
        ):
            raise ValueError(
                f"--init-encoder-from: {path} was trained with another dictionary than "
                f"{self.dictionary_path}; use the data directory it was trained with"
            )
        prefix = "encoder."
        encoder_state = {k[len(prefix):]: v for k, v in theirs.items() if k.startswith(prefix)}
        mismatch = state_mismatch(self.encoder.state_dict(), encoder_state)
        if mismatch:
            raise ValueError(
                f"--init-encoder-from: the encoder in {path} does not match this model's "
                f"(another size, --bn-gamma on in one only, or an LSTM LM?): {mismatch}"
            )
        self.encoder.load_state_dict(encoder_state)
        logger.info(f"encoder initialized from {path} ({len(encoder_state)} tensors); "
                    f"decoder freshly initialized")


def base_architecture(args):
    """PTB-sized defaults; every field is documented in ``SeqVAELSTMConfig``."""
    args.encoder_embed_dim = safe_getattr(args, "encoder_embed_dim", 256)
    args.encoder_hidden_dim = safe_getattr(args, "encoder_hidden_dim", 256)
    args.encoder_layers = safe_getattr(args, "encoder_layers", 1)
    args.encoder_bidirectional = safe_getattr(args, "encoder_bidirectional", False)
    args.encoder_merge = safe_getattr(args, "encoder_merge", "concat")
    args.no_posterior_bias = safe_getattr(args, "no_posterior_bias", False)
    args.encoder_dropout = safe_getattr(args, "encoder_dropout", 0.0)
    args.pooling = safe_getattr(args, "pooling", "max")
    args.latent_dim = safe_getattr(args, "latent_dim", 32)
    args.bn_gamma = safe_getattr(args, "bn_gamma", 0.0)
    args.init_encoder_from = safe_getattr(args, "init_encoder_from", None)
    args.decoder_embed_dim = safe_getattr(args, "decoder_embed_dim", 256)
    args.decoder_hidden_dim = safe_getattr(args, "decoder_hidden_dim", 256)
    args.decoder_layers = safe_getattr(args, "decoder_layers", 1)
    args.decoder_dropout_in = safe_getattr(args, "decoder_dropout_in", 0.5)
    args.decoder_dropout_out = safe_getattr(args, "decoder_dropout_out", 0.5)
    args.word_dropout = safe_getattr(args, "word_dropout", 0.0)
    args.init_scale = safe_getattr(args, "init_scale", 0.01)


@register_model_architecture("seqvae_lstm", "seqvae_lstm_tiny")
def seqvae_lstm_tiny(args):
    """For tests: 16-dim embeddings and states, 4-dim latent."""
    args.encoder_embed_dim = safe_getattr(args, "encoder_embed_dim", 16)
    args.encoder_hidden_dim = safe_getattr(args, "encoder_hidden_dim", 16)
    args.latent_dim = safe_getattr(args, "latent_dim", 4)
    args.decoder_embed_dim = safe_getattr(args, "decoder_embed_dim", 16)
    args.decoder_hidden_dim = safe_getattr(args, "decoder_hidden_dim", 16)
    args.decoder_dropout_in = safe_getattr(args, "decoder_dropout_in", 0.0)
    args.decoder_dropout_out = safe_getattr(args, "decoder_dropout_out", 0.0)
    base_architecture(args)


@register_model_architecture("seqvae_lstm", "seqvae_lstm_ptb")
def seqvae_lstm_ptb(args):
    """PTB setting of Li et al. 2019: embedding 256, hidden 256, latent 32, dropout 0.5/0.5."""
    base_architecture(args)


@register_model_architecture("seqvae_lstm", "seqvae_lstm_yahoo")
def seqvae_lstm_yahoo(args):
    """Yahoo/Yelp setting of He et al. 2019: embedding 512, hidden 1024, latent 32,
    decoder dropout 0.5/0.5."""
    args.encoder_embed_dim = safe_getattr(args, "encoder_embed_dim", 512)
    args.encoder_hidden_dim = safe_getattr(args, "encoder_hidden_dim", 1024)
    args.decoder_embed_dim = safe_getattr(args, "decoder_embed_dim", 512)
    args.decoder_hidden_dim = safe_getattr(args, "decoder_hidden_dim", 1024)
    base_architecture(args)


@register_model_architecture("seqvae_lstm", "seqvae_lstm_ptb_bienc")
def seqvae_lstm_ptb_bienc(args):
    """The PTB size with the pooling paper's authors' encoder, as in Xu, Cheung & Cao
    2020's code: a 2-layer bidirectional LSTM whose two directions are averaged at each
    position before pooling, and a posterior layer without bias."""
    args.encoder_layers = safe_getattr(args, "encoder_layers", 2)
    args.encoder_bidirectional = safe_getattr(args, "encoder_bidirectional", True)
    args.encoder_merge = safe_getattr(args, "encoder_merge", "mean")
    args.no_posterior_bias = safe_getattr(args, "no_posterior_bias", True)
    base_architecture(args)
