"""A SMILES/SELFIES variational autoencoder (Gómez-Bombarelli et al., 2018; the MOSES VAE recipe).

A bidirectional GRU encodes a molecule into a Gaussian posterior ``q(z|x)``; a GRU decoder, given ``z``
as its initial state and at every step, reconstructs the tokens. The loss is MOSES's: per-token
reconstruction cross-entropy + ``kl_weight`` × KL, with the weight annealed linearly from 0 over the
first ``kl_anneal_steps`` batches (posterior collapse otherwise). Validation uses the final weight so
that epochs compare. Sampling decodes ``z ~ N(0, I)``; the encoder's means are the latent space the
latent GAN learns.
"""

from __future__ import annotations

from typing import Annotated, Any

import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from medlearn.molecules.generators.sampling import PAD_ID, sample_tokens, token_targets

#: What ``model.params`` is checked against before anything is built (engine.validate binds the params to
#: these signatures): a width, size or count is a positive integer within reason, a dropout a probability
#: below 1. A negative width would otherwise fail deep inside torch, a huge one exhaust memory.
Size = Annotated[int, Field(ge=1, le=8192)]
#: set by the task from the data (input features, classes, vocabulary): positive, no upper bound
Positive = Annotated[int, Field(ge=1)]
Count = Annotated[int, Field(ge=1, le=64)]
Rate = Annotated[float, Field(ge=0, lt=1)]
Length = Annotated[int, Field(ge=2, le=10_000)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Steps = Annotated[int, Field(ge=0, le=100_000_000)]


class MolVAE(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int = 64,
        encoder_hidden: int = 256,
        latent_dim: int = 64,
        decoder_hidden: int = 384,
        decoder_layers: int = 2,
        dropout: float = 0.1,
        kl_weight: float = 0.05,
        kl_anneal_steps: int = 5000,
        max_length: int = 100,
    ) -> None:
        super().__init__()
        self.vocab_size, self.latent_dim, self.max_length = vocab_size, latent_dim, max_length
        self.kl_weight, self.kl_anneal_steps = kl_weight, kl_anneal_steps
        self.decoder_layers, self.decoder_hidden = decoder_layers, decoder_hidden
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD_ID)
        self.encoder = nn.GRU(embedding_dim, encoder_hidden, batch_first=True, bidirectional=True)
        self.to_mu = nn.Linear(2 * encoder_hidden, latent_dim)
        self.to_logvar = nn.Linear(2 * encoder_hidden, latent_dim)
        self.latent_to_hidden = nn.Linear(latent_dim, decoder_hidden * decoder_layers)
        self.decoder = nn.GRU(
            embedding_dim + latent_dim,
            decoder_hidden,
            decoder_layers,
            batch_first=True,
            dropout=dropout if decoder_layers > 1 else 0.0,
        )
        self.head = nn.Linear(decoder_hidden, vocab_size)
        # Batches seen, for KL annealing; a buffer so a resumed run continues the schedule.
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    # -- encoder --------------------------------------------------------------------------------------
    def encode(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and log-variance ``(B, latent_dim)`` of token ids ``(B, L)`` (bos first)."""
        lengths = (tokens != PAD_ID).sum(dim=1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(
            self.embedding(tokens), lengths, batch_first=True, enforce_sorted=False
        )
        _, h = self.encoder(packed)
        h = torch.cat([h[-2], h[-1]], dim=-1)
        return self.to_mu(h), self.to_logvar(h)

    @torch.no_grad()
    def encode_mean(self, x: torch.Tensor) -> torch.Tensor:
        """The latent point of each molecule (posterior mean) of a float id batch."""
        return self.encode(x.long())[0]

    # -- decoder --------------------------------------------------------------------------------------
    def _initial_state(self, z: torch.Tensor) -> torch.Tensor:
        h = self.latent_to_hidden(z).view(len(z), self.decoder_layers, self.decoder_hidden)
        return h.transpose(0, 1).contiguous()

    def decode_logits(self, z: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits ``(B, T, vocab)`` of ``inputs`` given latent points ``z``."""
        emb = self.embedding(inputs)
        emb = torch.cat([emb, z[:, None, :].expand(-1, emb.shape[1], -1)], dim=-1)
        out, _ = self.decoder(emb, self._initial_state(z))
        return self.head(out)

    @torch.no_grad()
    def decode(
        self,
        z: torch.Tensor,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        max_length: int | None = None,
    ) -> torch.Tensor:
        """Token ids ``(n, L)`` sampled from the decoder at latent points ``z``."""

        def step(previous: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
            emb = torch.cat([self.embedding(previous), z], dim=-1)[:, None, :]
            out, state = self.decoder(emb, state)
            return self.head(out[:, 0]), state

        return sample_tokens(
            step,
            self._initial_state(z),
            len(z),
            max_length or self.max_length,
            temperature,
            generator,
            z.device,
        )

    # -- the generative contract ----------------------------------------------------------------------
    def current_kl_weight(self) -> float:
        if not self.training or self.kl_anneal_steps <= 0:
            return self.kl_weight
        return self.kl_weight * min(1.0, float(self.steps) / self.kl_anneal_steps)

    def training_loss(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.long()
        mu, logvar = self.encode(tokens)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        inputs, targets = token_targets(x)
        logits = self.decode_logits(z, inputs)
        reconstruction = F.cross_entropy(
            logits.reshape(-1, self.vocab_size), targets.reshape(-1), ignore_index=PAD_ID
        )
        kl = 0.5 * (torch.exp(logvar) + mu**2 - 1 - logvar).sum(dim=1).mean()
        weight = self.current_kl_weight()
        if self.training:
            self.steps += 1
        return reconstruction + weight * kl

    @torch.no_grad()
    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        max_length: int | None = None,
    ) -> torch.Tensor:
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator, device=device)
        return self.decode(z, generator, temperature, max_length)


def mol_vae(
    vocab_size: Positive,
    embedding_dim: Size = 64,
    encoder_hidden: Size = 256,
    latent_dim: Size = 64,
    decoder_hidden: Size = 384,
    decoder_layers: Count = 2,
    dropout: Rate = 0.1,
    kl_weight: NonNegative = 0.05,
    kl_anneal_steps: Steps = 5000,
    max_length: Length = 100,
) -> MolVAE:
    """The registered factory (``model.name: mol_vae``)."""
    return MolVAE(
        vocab_size,
        embedding_dim,
        encoder_hidden,
        latent_dim,
        decoder_hidden,
        decoder_layers,
        dropout,
        kl_weight,
        kl_anneal_steps,
        max_length,
    )
