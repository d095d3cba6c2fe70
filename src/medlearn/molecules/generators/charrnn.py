"""CharRNN (Segler et al., 2018; the MOSES baseline): an LSTM language model over SMILES or SELFIES tokens.

Trained by next-token cross-entropy (teacher forcing), sampled token by token. ``log_likelihood`` gives
the per-molecule log-probability that REINVENT-style guided generation needs.
"""

from __future__ import annotations

from typing import Annotated, Any

import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from medlearn.molecules.generators.sampling import EOS_ID, PAD_ID, sample_tokens, token_targets

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


class CharRNN(nn.Module):
    """Embedding → stacked LSTM → next-token logits.

    Args:
        vocab_size: ids in the bundle's vocabulary (specials included).
        max_length: longest sample in tokens (eos included); the task sets it from the training set.
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int = 64,
        hidden_size: int = 384,
        num_layers: int = 2,
        dropout: float = 0.1,
        max_length: int = 100,
    ) -> None:
        super().__init__()
        self.vocab_size, self.max_length = vocab_size, max_length
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD_ID)
        self.lstm = nn.LSTM(
            embedding_dim,
            hidden_size,
            num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, tokens: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """Logits ``(B, T, vocab)`` for every position of ``tokens`` ``(B, T)``, and the LSTM state."""
        out, state = self.lstm(self.embedding(tokens), state)
        return self.head(out), state

    def training_loss(self, x: torch.Tensor) -> torch.Tensor:
        inputs, targets = token_targets(x)
        logits, _ = self(inputs)
        return F.cross_entropy(logits.reshape(-1, self.vocab_size), targets.reshape(-1), ignore_index=PAD_ID)

    def log_likelihood(self, tokens: torch.Tensor) -> torch.Tensor:
        """Sum of token log-probabilities per molecule ``(B,)``; ``tokens`` start with bos, pad after eos."""
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        logits, _ = self(inputs)
        logp = torch.log_softmax(logits, dim=-1).gather(2, targets.unsqueeze(2)).squeeze(2)
        return (logp * (targets != PAD_ID)).sum(dim=1)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        max_length: int | None = None,
    ) -> torch.Tensor:
        def step(previous: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
            logits, state = self(previous[:, None], state)
            return logits[:, 0], state

        device = next(self.parameters()).device
        return sample_tokens(step, None, n, max_length or self.max_length, temperature, generator, device)


def char_rnn(
    vocab_size: Positive,
    embedding_dim: Size = 64,
    hidden_size: Size = 384,
    num_layers: Count = 2,
    dropout: Rate = 0.1,
    max_length: Length = 100,
) -> CharRNN:
    """The registered factory (``model.name: char_rnn``)."""
    return CharRNN(vocab_size, embedding_dim, hidden_size, num_layers, dropout, max_length)


__all__ = ["CharRNN", "char_rnn", "EOS_ID"]
