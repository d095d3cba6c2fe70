"""Molecule generators on the shared Trainer: a character/SELFIES RNN, a VAE and a latent GAN.

Every generator is an ``nn.Module`` with the engine's generative contract:

- ``training_loss(x)``: the mean loss of a batch of token ids (float tensor ``(B, L)``: bos, tokens,
  eos, padding), so the Trainer needs no targets; in eval mode a loss comparable across epochs;
- ``sample(n, generator=None, temperature=1.0)``: ``(n, L)`` int64 token ids (without bos), decoded by
  the bundle's own codec.

Token ids follow :class:`medlearn.molecules.representations.Vocabulary`: pad 0, bos 1, eos 2.
"""

from medlearn.lazy import lazy_getattr

_EXPORTS = {
    "CharRNN": "charrnn",
    "char_rnn": "charrnn",
    "MolVAE": "vae",
    "mol_vae": "vae",
    "LatentGAN": "latent_gan",
    "latent_gan": "latent_gan",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
