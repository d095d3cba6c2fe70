"""Autoregressive sampling shared by the generators: one token per step for a whole batch.

A step function maps the previous token (and the recurrent state) to next-token logits; the loop draws
from the tempered softmax, stops each row at its eos and pads after it. Drawing from a seeded
``torch.Generator`` makes a bundle's samples reproducible.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

PAD_ID, BOS_ID, EOS_ID = 0, 1, 2

#: (previous tokens (n,), state) → (logits (n, vocab), new state)
StepFn = Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]]


@torch.no_grad()
def sample_tokens(
    step: StepFn,
    state: Any,
    n: int,
    max_length: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | None = None,
) -> torch.Tensor:
    """``(n, max_length)`` int64 ids drawn token by token, each row ending at its eos (pad after it).

    Rows that never reach eos within ``max_length`` stay unterminated; the codec decodes them as they
    are and they usually fail validity, which is what MOSES counts.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    out = torch.full((n, max_length), PAD_ID, dtype=torch.long, device=device)
    previous = torch.full((n,), BOS_ID, dtype=torch.long, device=device)
    finished = torch.zeros(n, dtype=torch.bool, device=device)
    for t in range(max_length):
        logits, state = step(previous, state)
        logits[:, PAD_ID] = float("-inf")
        logits[:, BOS_ID] = float("-inf")
        probs = torch.softmax(logits.float() / temperature, dim=-1)
        token = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        token = torch.where(finished, torch.full_like(token, PAD_ID), token)
        out[:, t] = token
        finished |= token == EOS_ID
        if bool(finished.all()):
            break
        previous = token
    return out


def token_targets(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher forcing: inputs ``x[:, :-1]`` and next-token targets ``x[:, 1:]`` of a float id batch."""
    tokens = x.long()
    return tokens[:, :-1], tokens[:, 1:]
