"""LatentGAN (Prykhodko et al., 2019; a MOSES baseline): a Wasserstein GAN in an autoencoder's latent space.

The GAN never sees tokens: its critic compares generated latent vectors with the latent points (posterior
means) of real training molecules under a trained :class:`~medlearn.molecules.generators.vae.MolVAE`, and
the VAE's decoder turns generated vectors into molecules. The autoencoder is frozen and travels inside
the GAN's bundle, so sampling needs nothing else.

Training is WGAN-GP (Gulrajani et al., 2017) inside the engine's single-optimizer loop: each batch
trains the critic; every ``n_critic``-th batch also trains the generator, against a detached copy of
the critic's weights so that its loss moves only the generator.
"""

from __future__ import annotations

from typing import Annotated, Any

import torch
from pydantic import Field
from torch import nn
from torch.func import functional_call

from medlearn.errors import ConfigError
from medlearn.molecules.generators.vae import MolVAE

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


def _mlp(sizes: list[int], out_activation: nn.Module | None = None) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU(0.2))
    if out_activation is not None:
        layers.append(out_activation)
    return nn.Sequential(*layers)


class LatentGAN(nn.Module):
    def __init__(
        self,
        autoencoder: MolVAE,
        noise_dim: int = 64,
        hidden: int = 256,
        layers: int = 3,
        n_critic: int = 5,
        gp_weight: float = 10.0,
    ) -> None:
        super().__init__()
        self.autoencoder = autoencoder.eval()
        for p in self.autoencoder.parameters():
            p.requires_grad_(False)
        latent = autoencoder.latent_dim
        self.noise_dim, self.n_critic, self.gp_weight = noise_dim, n_critic, gp_weight
        self.generator = _mlp([noise_dim] + [hidden] * layers + [latent])
        self.critic = _mlp([latent] + [hidden] * layers + [1])
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def train(self, mode: bool = True) -> LatentGAN:
        super().train(mode)
        self.autoencoder.eval()  # frozen: dropout off, always
        return self

    def generate_latents(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        device = next(self.generator.parameters()).device
        return self.generator(torch.randn(n, self.noise_dim, generator=generator, device=device))

    def _gradient_penalty(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        alpha = torch.rand(len(real), 1, device=real.device)
        mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(self.critic(mixed).sum(), mixed, create_graph=True)
        return ((grad.norm(2, dim=1) - 1) ** 2).mean()

    def training_loss(self, x: torch.Tensor) -> torch.Tensor:
        """Critic loss (+ generator loss every ``n_critic`` batches) in training; in eval mode the critic's
        Wasserstein-distance estimate ``E[D(real)] - E[D(fake)]``, which falls as generated latent points
        become harder to tell from real ones (WGAN-GP's convergence signal; lower is better)."""
        real = self.autoencoder.encode_mean(x)
        fake = self.generate_latents(len(real))
        if not self.training:
            return self.critic(real).mean() - self.critic(fake).mean()
        loss = (
            self.critic(fake.detach()).mean()
            - self.critic(real).mean()
            + self.gp_weight * self._gradient_penalty(real, fake.detach())
        )
        if int(self.steps) % self.n_critic == 0:
            frozen = {k: v.detach() for k, v in self.critic.named_parameters()}
            loss = loss - functional_call(self.critic, frozen, (fake,)).mean()
        self.steps += 1
        return loss

    @torch.no_grad()
    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        max_length: int | None = None,
    ) -> torch.Tensor:
        return self.autoencoder.decode(
            self.generate_latents(n, generator), generator, temperature, max_length
        )


def latent_gan(
    vocab_size: Positive,
    autoencoder: str | dict[str, Any],
    codec: dict[str, Any] | None = None,
    noise_dim: Size = 64,
    hidden: Size = 256,
    layers: Count = 3,
    n_critic: Count = 5,
    gp_weight: NonNegative = 10.0,
    max_length: Length = 100,
) -> LatentGAN:
    """The registered factory (``model.name: latent_gan``).

    ``autoencoder`` is a trained ``mol_vae`` bundle directory when training (its weights are loaded and
    frozen) or, in a saved GAN bundle, the VAE's constructor arguments (its weights are in the GAN's
    own). ``codec`` is the training data's tokeniser + vocabulary: it must be the VAE's, or the latent
    points would be read from the wrong tokens.
    """
    if isinstance(autoencoder, dict):
        vae = MolVAE(**autoencoder)
        model = LatentGAN(vae, noise_dim, hidden, layers, n_critic, gp_weight)
    else:
        from pathlib import Path

        from medlearn.engine.bundle import load_bundle

        if not Path(autoencoder).exists():
            raise ConfigError(
                f"model.params.autoencoder: {autoencoder} does not exist; train a mol_vae bundle "
                "first (e.g. medlearn train mol_vae_moses --out runs/mol_vae_moses)"
            )
        bundle = load_bundle(autoencoder)
        if bundle.meta.model.name != "mol_vae":
            raise ConfigError(
                f"model.params.autoencoder: {autoencoder} holds a {bundle.meta.model.name} "
                "model; the latent GAN needs a mol_vae bundle"
            )
        vae_codec = next(
            (s["params"].get("codec") for s in bundle.meta.preprocessing if s["name"] == "mol_tokens"),
            None,
        )
        if codec is not None and vae_codec != codec:
            raise ConfigError(
                f"model.params.autoencoder: {autoencoder} was trained with another tokeniser or "
                "vocabulary than this run's data; train the GAN with the VAE's data options"
            )
        model = LatentGAN(bundle.model, noise_dim, hidden, layers, n_critic, gp_weight)
        vae_params = dict(bundle.meta.model.params)
        model.init_params = {
            "vocab_size": vocab_size,
            "autoencoder": vae_params,
            "codec": codec,
            "noise_dim": noise_dim,
            "hidden": hidden,
            "layers": layers,
            "n_critic": n_critic,
            "gp_weight": gp_weight,
            "max_length": max_length,
        }
    if vocab_size != model.autoencoder.vocab_size:
        raise ConfigError(
            f"model.params.autoencoder: the VAE has {model.autoencoder.vocab_size} token ids, "
            f"the data {vocab_size}"
        )
    return model
