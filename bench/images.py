"""``ManifestDatamodule`` + ``LoadImage`` against a hand-written TIFF ``Dataset``.

Goal (issue 8): images/s >= 1.0x the hand-written baseline.

2,000 single-channel 64x64 uint16 TIFFs (``tifffile.imwrite``) listed in a
CSV manifest (``path``, ``split``: 80/10/10 train/val/test). One epoch of
the shuffled train split, ``batch_size=32`` (``data=images``' default),
``num_workers=2``, non-persistent workers, so each epoch includes starting
the workers, on both sides. The baseline reads the same files in the same
order of work: a ``Dataset`` whose ``__getitem__`` is
``torch.from_numpy(tifffile.imread(path).astype(np.float32)[None])``, with
``DataLoader(..., batch_size=32, shuffle=True, num_workers=2)`` and the default
collate. Both give float32 batches of shape [32, 1, 64, 64].
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from _timing import alternate, cpu_seconds, header, median, paired_ratio, rate, table, verdict

N_IMAGES, SIZE, BATCH, WORKERS = 2_000, 64, 32, 2
REPEATS = 9


def write_images(folder: Path) -> Path:
    import pandas as pd
    import tifffile

    rng = np.random.default_rng(0)
    paths = []
    for i in range(N_IMAGES):
        path = folder / f"img_{i:04d}.tif"
        tifffile.imwrite(path, rng.integers(0, 4096, size=(SIZE, SIZE), dtype=np.uint16))
        paths.append(str(path))
    manifest = folder / "images.csv"
    pd.DataFrame({"path": paths, "split": rng.choice(["train", "val", "test"], size=N_IMAGES,
                                                     p=[0.8, 0.1, 0.1])}).to_csv(manifest, index=False)
    return manifest


def main() -> None:
    import pandas as pd
    import tifffile
    import torch
    from torch.utils.data import DataLoader, Dataset

    from serotiny_plugins.datamodule import ManifestDatamodule
    from serotiny_plugins.images import LoadImage

    header("bench/images.py: ManifestDatamodule + LoadImage vs a hand-written TIFF Dataset")
    with tempfile.TemporaryDirectory(prefix="serotiny-bench-images-") as tmp:
        manifest = write_images(Path(tmp))
        frame = pd.read_csv(manifest)
        train_paths = frame.loc[frame["split"] == "train", "path"].tolist()
        n = len(train_paths)

        class TiffDataset(Dataset):
            def __len__(self) -> int:
                return n

            def __getitem__(self, i: int) -> torch.Tensor:
                return torch.from_numpy(tifffile.imread(train_paths[i]).astype(np.float32)[None])

        dm = ManifestDatamodule(manifest, loaders={"x": LoadImage(column="path")}, split_column="split",
                                batch_size=BATCH, num_workers=WORKERS)
        dm.setup("fit")
        first = next(iter(dm.train_dataloader()))["x"]
        assert tuple(first.shape) == (BATCH, 1, SIZE, SIZE) and first.dtype == torch.float32, first.shape

        cpu: dict[str, list[float]] = {"hand": [], "serotiny": []}

        def epoch(name: str, loader: DataLoader) -> float:
            """images/s; the CPU seconds per image of this process and its (exited) workers aside."""
            cpu_start, start = cpu_seconds(), time.perf_counter()
            for _ in loader:
                pass
            speed = n / (time.perf_counter() - start)
            del loader
            cpu[name].append((cpu_seconds() - cpu_start) / n)
            return speed

        def serotiny() -> float:
            return epoch("serotiny", dm.train_dataloader())

        def by_hand() -> float:
            return epoch("hand", DataLoader(TiffDataset(), batch_size=BATCH, shuffle=True,
                                            num_workers=WORKERS))

        runs = alternate({"hand": by_hand, "serotiny": serotiny}, REPEATS, warmup=1)
    rates = {k: median(v) for k, v in runs.items()}
    ratio = rates["serotiny"] / rates["hand"]
    paired = paired_ratio(runs["serotiny"], runs["hand"])
    print(f"{n:,} train images of {N_IMAGES:,} ({SIZE}x{SIZE} uint16 TIFF) per epoch, batch {BATCH}, "
          f"num_workers={WORKERS} (started each epoch); median of {REPEATS} epochs, alternating\n")
    print(table(["loader", "images/s", "ratio of medians", "median of paired ratios", "goal"], [
        ["hand-written `Dataset` + `tifffile.imread` (baseline)", rate(rates["hand"]), "1.00x", "1.00x",
         "baseline"],
        ["`ManifestDatamodule` + `LoadImage`", rate(rates["serotiny"]), f"{ratio:.2f}x", f"{paired:.2f}x",
         verdict(ratio, 1.0, higher_is_better=True)],
    ]))
    spread = {k: f"{min(v) / 1e3:.2f}-{max(v) / 1e3:.2f} k" for k, v in runs.items()}
    print(f"\nspread over the {REPEATS} epochs (images/s): by hand {spread['hand']}, "
          f"serotiny {spread['serotiny']}")
    per_image = {k: median(v[1:]) * 1e6 for k, v in cpu.items()}  # v[0]: the warm-up epoch
    print(f"CPU time per image (main process + its workers, median): by hand {per_image['hand']:.0f} us, "
          f"serotiny {per_image['serotiny']:.0f} us ({per_image['serotiny'] / per_image['hand']:.2f}x)")


if __name__ == "__main__":
    main()
