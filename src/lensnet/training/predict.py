"""``lensnet predict`` past one process: the FITS catalogue through Lightning's predict loop (DDP).

Each rank reads and estimates its share of the files (Lightning gives every rank its own, unrepeated
part of the list), writes its rows to ``<catalogue>.part<rank>.json`` beside the catalogue, and rank 0
joins the parts, in the files' order, into the catalogue once all ranks are done. The rows are those of
:func:`lensnet.inference.catalog.predict_fits`, so one process or many give the same catalogue.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Sequence

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader

from lensnet.inference.catalog import catalog_table, estimate_items, fits_inputs, write_catalog

__all__ = ["predict_fits_distributed"]


class _CatalogModule(L.LightningModule):
    """A predictor in Lightning's predict loop: each batch of FITS items becomes catalogue rows."""

    def __init__(self, predictor, symmetrize: bool):
        super().__init__()
        self.predictor, self.symmetrize = predictor, symmetrize

    def predict_step(self, items, batch_idx):
        return estimate_items(self.predictor, items, self.symmetrize)

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        return batch  # items carry WCS objects and reasons; predict() moves the images itself


class _PartWriter(BasePredictionWriter):
    """Writes a rank's rows to its part file at the end of the loop."""

    def __init__(self, catalog: Path):
        super().__init__(write_interval="epoch")
        self.catalog = catalog

    def part(self, rank: int) -> Path:
        return self.catalog.with_name(f"{self.catalog.name}.part{rank}.json")

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices):
        rows = [row for batch in predictions for row in batch]
        self.part(trainer.global_rank).write_text(json.dumps(rows))


def predict_fits_distributed(predictor, paths: Sequence[str | Path], catalog: str | Path, *, devices: int | str = 1,
                             num_nodes: int = 1, accelerator: str = "auto", batch_size: int = 64,
                             num_workers: int = 0, symmetrize: bool = False, progress: bool = True,
                             overwrite: bool = False, **options):
    """Estimate FITS images on ``devices`` x ``num_nodes`` processes and write the joined catalogue.

    ``options`` are those of :func:`lensnet.inference.catalog.predict_fits` (hdu, pixel_scale, center,
    sky_center, mask, cosmic_rays). Returns the catalogue on rank 0, None on the other ranks.
    """
    catalog = Path(catalog)
    dataset = fits_inputs(predictor, paths, **options)
    loader = DataLoader(dataset, batch_size=int(batch_size), num_workers=num_workers, collate_fn=list)
    writer = _PartWriter(catalog)
    trainer = L.Trainer(accelerator=accelerator, devices=devices, num_nodes=num_nodes,
                        strategy="ddp" if _world(devices, num_nodes) > 1 else "auto", logger=False,
                        enable_checkpointing=False, enable_progress_bar=progress, callbacks=[writer],
                        enable_model_summary=False)
    with warnings.catch_warnings():
        for message in (r".*does not have many workers.*", r".*isinstance\(treespec, LeafSpec\).*"):
            warnings.filterwarnings("ignore", message=message)
        trainer.predict(_CatalogModule(predictor, symmetrize), loader, return_predictions=False)
    trainer.strategy.barrier()
    if not trainer.is_global_zero:
        return None
    parts = [writer.part(rank) for rank in range(trainer.world_size)]
    rows = [row for part in parts for row in json.loads(part.read_text())]
    table = catalog_table(rows, predictor.card)
    write_catalog(table, catalog, overwrite=overwrite)
    for part in parts:
        part.unlink()
    return table


def _world(devices, num_nodes: int) -> int:
    return (devices if isinstance(devices, int) else torch.cuda.device_count() or 1) * num_nodes
