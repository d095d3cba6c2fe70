"""Multimodal fusion: one model over several encoders, robust to a missing modality.

Where it sits: below the modalities, beside the engine. It knows tensors, a :class:`~medlearn.fusion.packing.Layout`
naming the parts of an input, and registered model names; it never imports a modality (``.importlinter``
contract *fusion-knows-no-modality*). A task (e.g. :mod:`medlearn.imaging.tasks.lidc_fusion`) says which
parts its units have and which encoder reads each; the fusion model does the rest.

How the engine sees a fused input: ONE float32 vector per unit. The engine's Preprocessing returns one
array per unit, the dataset caches and stacks those arrays, the Trainer batches them, calibration,
reports and bundles take the model's outputs. Rather than teach each of those about dicts of tensors,
:mod:`medlearn.fusion.packing` packs the parts (each flattened, e.g. a 16×64×64 slice stack and 72
radiomic features) and one presence flag per part into that vector, and the fused model unpacks it from
the layout stored in its parameters. The engine runs unchanged (no per-modality branch anywhere), the
cache keeps working, and a bundle rebuilds the model from JSON parameters alone.

Missing modalities (see :mod:`medlearn.fusion.model`):

- a unit whose part is absent carries zeros and presence flag 0 (``FusionPack`` does this when the raw
  unit has no such part, e.g. ``medlearn predict`` on a PNG folder without radiomics);
- training drops whole modalities at random (``modality_dropout``, per unit, never all of them), so the
  model learns to predict from any non-empty subset;
- late fusion averages the per-modality logits over the present modalities only (masking);
- attention fusion replaces an absent modality's token by a learned "missing" embedding of that
  modality and attends over the tokens with a summary token; the learned token tells the network the
  part is absent rather than pretending it is zero.
"""
