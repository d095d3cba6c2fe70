"""Imaging training benchmark: medlearn's Trainer vs a plain PyTorch loop, and the cache's epoch-2 gain.

1. Throughput (training samples/s, validation excluded) of ``medlearn.engine.Trainer`` against the
   obvious hand-written loop (``TensorDataset`` + ``DataLoader`` + Adam + BCE), same model, same data,
   same batch size, same epochs, measured in this run. Goal: ratio >= 0.95.
2. Cached preprocessing: epoch 1 (each unit is preprocessed when first used) against epoch 2 (served
   from the cache) of the same Trainer run, on the DICOM phantom CT task, where preprocessing resamples
   each nodule box to isotropic voxels.

Run: ``python benchmarks/imaging_train.py [--epochs 3] [--threads 2]``. Prints figures, not asserts.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medlearn.config import TrainConfig
from medlearn.engine.data import CachedDataset, Preprocessing
from medlearn.engine.models import build_model
from medlearn.engine.trainer import Trainer, seed_everything
from medlearn.paths import data_root
from medlearn.registry import task_class


def lidc_arrays() -> tuple[np.ndarray, np.ndarray, list, Preprocessing]:
    task = task_class("lung_nodule_malignancy")()
    table = task.load(data_root() / "imaging/lidc-segmented-nodules-2d")
    pre = Preprocessing(task.preprocessing_spec("nodule_resnet25d"))
    x = np.stack([pre(r) for r in table.raw])
    return x, table.targets, table.raw, pre


def plain_loop(x: np.ndarray, y: np.ndarray, epochs: int, batch_size: int) -> float:
    """The hand-written loop a user would write; returns training samples/s."""
    seed_everything(0)
    model, _ = build_model("nodule_resnet25d", {}, {"in_channels": x.shape[1], "out_channels": 1})
    data = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y.astype(np.float32)))
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=True, drop_last=False)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    model.train()
    n, t0 = 0, time.perf_counter()
    for _ in range(epochs):
        for xb, yb in loader:
            opt.zero_grad()
            loss = loss_fn(model(xb)[:, 0], yb)
            loss.backward()
            opt.step()
            n += len(xb)
    return n / (time.perf_counter() - t0)


def medlearn_trainer(x: np.ndarray, y: np.ndarray, epochs: int, batch_size: int) -> float:
    seed_everything(0)
    model, _ = build_model("nodule_resnet25d", {}, {"in_channels": x.shape[1], "out_channels": 1})
    cfg = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        scheduler="none",
        augment=False,
        early_stopping={"patience": epochs + 1},
    )
    train = CachedDataset(list(x), y, Preprocessing([]))
    val = CachedDataset(list(x[:64]), y[:64], Preprocessing([]))
    result = Trainer(cfg, "binary", "auroc", ["benign", "malignant"]).fit(model, train, val)
    return result.samples_per_second


def cache_gain(n_patients: int, batch_size: int) -> dict[str, float]:
    """Epoch 1 (preprocessing runs inside the epoch) vs epoch 2 (served from the cache), same Trainer."""
    from medlearn.imaging.demo import write_phantom_dataset

    task = task_class("ct_nodule_malignancy")()
    with tempfile.TemporaryDirectory() as tmp:
        write_phantom_dataset(Path(tmp), n_patients)
        table = task.load(Path(tmp))
    pre = Preprocessing(task.preprocessing_spec("cnn3d"))
    n_val = len(table) // 5
    train = CachedDataset(table.raw[n_val:], table.targets[n_val:], pre)
    val = CachedDataset(table.raw[:n_val], table.targets[:n_val], pre)
    t0 = time.perf_counter()
    for i in range(min(8, len(train))):
        pre(train.raw[i])
    per_unit = (time.perf_counter() - t0) / min(8, len(train))
    seed_everything(0)
    model, _ = build_model("cnn3d", {}, {"in_channels": 1, "out_channels": 1})
    cfg = TrainConfig(
        epochs=2, batch_size=batch_size, scheduler="none", augment=False, early_stopping={"patience": 3}
    )
    history = Trainer(cfg, "binary", "auroc", ["benign", "malignant"]).fit(model, train, val).history
    return {
        "units": len(table),
        "preprocess_ms_per_unit": 1000 * per_unit,
        "epoch1_s": history[0]["epoch_seconds"],
        "epoch2_s": history[1]["epoch_seconds"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--patients", type=int, default=30)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    x, y, _, _ = lidc_arrays()
    print(
        f"data: LIDC nodule marks, {len(x)} units of shape {x.shape[1:]}; model nodule_resnet25d; "
        f"{args.epochs} epochs, batch {args.batch_size}, torch threads {torch.get_num_threads()}"
    )
    plain_loop(x[:64], y[:64], 1, args.batch_size)  # warm-up (allocator, kernels)
    plain = plain_loop(x, y, args.epochs, args.batch_size)
    ours = medlearn_trainer(x, y, args.epochs, args.batch_size)
    print(f"plain PyTorch loop : {plain:8.1f} samples/s")
    print(f"medlearn Trainer   : {ours:8.1f} samples/s")
    print(f"ratio medlearn/plain: {ours / plain:.3f}  (goal >= 0.95)")
    gain = cache_gain(args.patients, args.batch_size)
    print(
        f"preprocessing cache (ct_nodule_malignancy on DICOM phantoms, {gain['units']} nodules, cnn3d; "
        f"preprocessing = resample to 1 mm + crop 32^3 + window, {gain['preprocess_ms_per_unit']:.1f} ms/unit):"
    )
    print(f"  epoch 1 (preprocessing + training): {gain['epoch1_s']:.2f} s")
    print(
        f"  epoch 2 (cached + training)       : {gain['epoch2_s']:.2f} s   "
        f"speed-up x{gain['epoch1_s'] / gain['epoch2_s']:.2f}"
    )


if __name__ == "__main__":
    main()
