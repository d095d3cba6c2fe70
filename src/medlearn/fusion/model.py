"""The fused model: one encoder per part of a packed input, late or attention (intermediate) fusion.

Encoders are registered models named in the config (``nodule_resnet25d`` for an image, ``tabular_mlp``
for a feature vector, anything in :mod:`medlearn.registry`): each is built with ``out_channels=embed_dim``,
so its output layer becomes an embedding of that size. Nothing here knows what the parts are.

Fusion (``fusion``):

- ``late``: each part's embedding → its own logit; the fused logit is the weighted mean of the logits of
  the parts present (learned positive weights, renormalised over the present parts: masking).
- ``attention``: each part's embedding → a token (layer norm + a learned type embedding); an absent part's
  token is a learned "missing" embedding of that part instead. A summary token and the part tokens go
  through ``layers`` transformer encoder layers; the summary token's output gives the logit. The parts'
  representations interact before the decision (intermediate fusion).

Modality dropout (``modality_dropout``): in training, each present part of each unit is dropped with this
probability (its embedding replaced as if it were absent), never all parts of a unit; the encoders still
see their input, so batch-norm statistics are those of real inputs. At prediction, absence comes from
the input's presence flags (:mod:`medlearn.fusion.packing`).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import torch
from pydantic import Field
from torch import nn

from medlearn.fusion.columns import ColumnLayout
from medlearn.fusion.packing import Layout

__all__ = ["FusedModel", "drop_modalities", "fused", "fused_columns"]

Size = Annotated[int, Field(ge=1, le=4096)]
Rate = Annotated[float, Field(ge=0, lt=1)]
Count = Annotated[int, Field(ge=1, le=8)]


def drop_modalities(
    present: torch.Tensor, rate: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``present`` (B, parts) with each True dropped with probability ``rate``; a unit that would lose
    every part keeps its original ones (a unit with nothing to predict from teaches nothing)."""
    if rate <= 0:
        return present
    keep = torch.rand(present.shape, generator=generator, device=present.device) >= rate
    dropped = present & keep
    emptied = ~dropped.any(dim=1, keepdim=True)
    return torch.where(emptied, present, dropped)


def _build_encoder(
    name: str, spec: Mapping[str, Any], data_kwargs: Mapping[str, Any], embed_dim: int
) -> nn.Module:
    """The registered model ``spec["model"]`` with ``spec["params"]``, the task's data kwargs it accepts
    (input channels, features), and ``out_channels=embed_dim``."""
    from medlearn.registry import model_factory

    if "model" not in spec:
        raise ValueError(f"encoders.{name}: name the encoder's model, e.g. {{model: tabular_mlp}}")
    factory = model_factory(str(spec["model"]))
    accepted = inspect.signature(factory).parameters
    kwargs = {**dict(spec.get("params") or {}), **{k: v for k, v in data_kwargs.items() if k in accepted}}
    kwargs["out_channels"] = embed_dim
    return factory(**kwargs)


class FusedModel(nn.Module):
    """Encoders over the parts of a packed input and a fusion head; outputs logits (B, out_channels)."""

    def __init__(
        self,
        layout: Layout | ColumnLayout,
        encoders: Mapping[str, nn.Module],
        out_channels: int,
        fusion: str,
        embed_dim: int,
        modality_dropout: float,
        heads: int,
        layers: int,
        dropout: float,
    ):
        super().__init__()
        if set(encoders) != set(layout.names):
            raise ValueError(f"one encoder per part: parts {layout.names}, encoders {sorted(encoders)}")
        if fusion not in ("late", "attention"):
            raise ValueError(f"fusion must be 'late' or 'attention', got {fusion!r}")
        self.layout, self.fusion, self.modality_dropout = layout, fusion, modality_dropout
        self.encoders = nn.ModuleDict({name: encoders[name] for name in layout.names})
        n = len(layout.names)
        if fusion == "late":
            self.heads = nn.ModuleDict(
                {name: nn.Sequential(nn.GELU(), nn.Linear(embed_dim, out_channels)) for name in layout.names}
            )
            self.part_weight = nn.Parameter(torch.zeros(n))  # softplus(0) each: equal weights at start
        else:
            self.norm = nn.LayerNorm(embed_dim)
            self.part_type = nn.Parameter(torch.randn(n, embed_dim) * 0.02)
            self.missing = nn.Parameter(torch.randn(n, embed_dim) * 0.02)
            self.summary = nn.Parameter(torch.randn(1, 1, embed_dim) * 0.02)
            layer = nn.TransformerEncoderLayer(
                embed_dim, heads, 2 * embed_dim, dropout, activation="gelu", batch_first=True, norm_first=True
            )
            self.mixer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.head = nn.Sequential(nn.LayerNorm(embed_dim), nn.Linear(embed_dim, out_channels))

    def embeddings(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-part embeddings (B, parts, embed_dim) and the presence mask in force (B, parts), after
        modality dropout when training."""
        parts, present = self.layout.unpack(x)
        emb = torch.stack(
            [self.encoders[name](parts[name]).reshape(x.shape[0], -1) for name in self.layout.names], 1
        )
        if self.training:
            present = drop_modalities(present, self.modality_dropout)
        return emb, present

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        emb, present = self.embeddings(x)
        if self.fusion == "late":
            logits = torch.stack([self.heads[name](emb[:, i]) for i, name in enumerate(self.layout.names)], 1)
            weight = nn.functional.softplus(self.part_weight)[None, :] * present.float()  # (B, parts)
            weight = weight / weight.sum(1, keepdim=True).clamp_min(1e-8)
            return (logits * weight[..., None]).sum(1)
        tokens = self.norm(emb)
        tokens = (
            torch.where(present[..., None], tokens, self.missing[None].expand_as(tokens)) + self.part_type
        )
        seq = torch.cat([self.summary.expand(x.shape[0], -1, -1), tokens], 1)
        return self.head(self._mix(seq)[:, 0])

    def _mix(self, seq: torch.Tensor) -> torch.Tensor:
        """The transformer layers step by step (pre-norm attention, then feed-forward), as
        ``TransformerEncoderLayer`` computes them in training. Why not call ``self.mixer``: in eval mode
        torch switches to fused kernels (``_transformer_encoder_layer_fwd``, ``_native_multi_head_attention``)
        that ONNX cannot export, so ``medlearn export`` would fail; this path is the same arithmetic in
        plain, exportable operations."""
        for layer in self.mixer.layers:
            h = layer.norm1(seq)
            seq = seq + layer.dropout1(_self_attention(layer.self_attn, h))
            seq = seq + layer._ff_block(layer.norm2(seq))
        return seq


def _self_attention(attn: nn.MultiheadAttention, h: torch.Tensor) -> torch.Tensor:
    """``attn(h, h, h)`` for batch-first ``h`` through the functional (non-fused) path, in any mode."""
    t = h.transpose(0, 1)
    out, _ = nn.functional.multi_head_attention_forward(
        t,
        t,
        t,
        attn.embed_dim,
        attn.num_heads,
        attn.in_proj_weight,
        attn.in_proj_bias,
        attn.bias_k,
        attn.bias_v,
        attn.add_zero_attn,
        attn.dropout,
        attn.out_proj.weight,
        attn.out_proj.bias,
        training=attn.training,
        need_weights=False,
    )
    return out.transpose(0, 1)


def fused(
    inputs: dict[str, dict[str, Any]],
    encoders: dict[str, dict[str, Any]] | None = None,
    out_channels: int = 1,
    fusion: Literal["late", "attention"] = "attention",
    embed_dim: Size = 64,
    modality_dropout: Rate = 0.25,
    heads: Count = 4,
    layers: Count = 1,
    dropout: Rate = 0.1,
    default_encoders: dict[str, dict[str, Any]] | None = None,
) -> nn.Module:
    """A :class:`FusedModel`.

    Args:
        inputs: set by the task: per part, in packing order, its ``shape`` and the data kwargs its encoder
            takes (``in_channels``, ``in_features``, ``image_size``...).
        encoders: from the config: per part, ``{model: registered name, params: {...}}``.
        fusion: ``late`` or ``attention`` (intermediate); chosen on validation per task.
        embed_dim: the size of every encoder's output embedding.
        modality_dropout: probability of dropping a present part of a training unit.
        default_encoders: set by the task: the encoders used when the config names none.
    """
    layout = Layout.from_parts({name: spec["shape"] for name, spec in inputs.items()})
    data = {name: {k: v for k, v in spec.items() if k != "shape"} for name, spec in inputs.items()}
    return _assemble(
        layout,
        data,
        encoders or default_encoders,
        out_channels,
        fusion,
        embed_dim,
        modality_dropout,
        heads,
        layers,
        dropout,
    )


def fused_columns(
    parts: dict[str, dict[str, Any]],
    encoders: dict[str, dict[str, Any]] | None = None,
    out_channels: int = 1,
    fusion: Literal["late", "attention"] = "attention",
    embed_dim: Size = 64,
    modality_dropout: Rate = 0.25,
    heads: Count = 4,
    layers: Count = 1,
    dropout: Rate = 0.1,
    default_encoders: dict[str, dict[str, Any]] | None = None,
) -> nn.Module:
    """A :class:`FusedModel` over column groups of one (B, T, F) input (:class:`ColumnLayout`).

    ``fusion``, ``embed_dim``, ``modality_dropout``, ``heads``, ``layers``, ``dropout`` and
    ``default_encoders`` are as for :func:`fused`.

    Args:
        parts: set by the task: per part, its ``columns`` (indices of the last axis) and ``series``
            (keep the time axis) — e.g. lab series, diagnosis history and demographics of an admission.
        encoders: from the config: per part, ``{model: registered name, params: {...}}``; each encoder is
            given ``in_features`` = its part's number of columns.
    """
    layout = ColumnLayout.from_parts(parts)
    data = {name: {"in_features": len(spec["columns"])} for name, spec in parts.items()}
    return _assemble(
        layout,
        data,
        encoders or default_encoders,
        out_channels,
        fusion,
        embed_dim,
        modality_dropout,
        heads,
        layers,
        dropout,
    )


def _assemble(
    layout: Layout | ColumnLayout,
    data: dict[str, dict[str, Any]],
    encoders: dict[str, dict[str, Any]] | None,
    out_channels: int,
    fusion: str,
    embed_dim: int,
    modality_dropout: float,
    heads: int,
    layers: int,
    dropout: float,
) -> FusedModel:
    """Check the encoders name exactly the layout's parts, build them, and the fused model around them."""
    if not encoders:
        raise ValueError(f"name an encoder per part ({', '.join(layout.names)}) in model.params.encoders")
    missing = [name for name in layout.names if name not in encoders]
    extra = [name for name in encoders if name not in layout.names]
    if missing or extra:
        raise ValueError(
            f"encoders must name exactly the parts {list(layout.names)}"
            + (f"; missing {missing}" if missing else "")
            + (f"; not a part: {extra}" if extra else "")
        )
    if fusion == "attention" and embed_dim % heads:
        raise ValueError(f"embed_dim {embed_dim} must be a multiple of heads {heads}")
    built = {name: _build_encoder(name, encoders[name], data[name], embed_dim) for name in layout.names}
    return FusedModel(
        layout, built, out_channels, fusion, embed_dim, modality_dropout, heads, layers, dropout
    )
