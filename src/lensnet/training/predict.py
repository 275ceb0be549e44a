"""``lensnet predict`` and ``lensnet refine`` past one process: the FITS catalogue through Lightning's predict
loop (DDP).

Each rank reads, estimates (and, for ``refine``, fits) its share of the files (Lightning gives every rank its
own, unrepeated part of the list) and appends each finished batch to its own journal,
``<catalogue>.partial.<run>.<rank>`` (:mod:`lensnet.io.journal`); rank 0 joins the journals, in the files'
order, into the catalogue once all ranks are done. The records are those of the one-process functions
(:func:`lensnet.inference.catalog.predict_fits`, :func:`lensnet.refine.catalog.refine_fits`), so one process or
many give the same catalogue, and a run stopped part way is resumed from the journals of every earlier run,
one process or many.
"""

from __future__ import annotations

import os
import uuid
import warnings
from pathlib import Path
from typing import Sequence

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader, Subset

from lensnet.errors import LensnetValueError
from lensnet.inference.catalog import BatchEstimator, catalog_table, check_batching, fits_inputs, run_identity
from lensnet.io.journal import RowJournal, journal_path, read_journals, worker_init
from lensnet.refine.catalog import BatchRefiner

__all__ = ["predict_fits_distributed"]

#: Environment variable naming a distributed run, the same on every node: set it for a multi-node run that is
#: not a SLURM job; on one node rank 0 draws one and the ranks it starts inherit it.
RUN_ID = "LENSNET_RUN_ID"
_DRAWN_RUN_ID = "_LENSNET_DRAWN_RUN_ID"


class _CatalogModule(L.LightningModule):
    """Batches of FITS items to catalogue records in Lightning's predict loop."""

    def __init__(self, predictor, records):
        super().__init__()
        self.predictor, self.records = predictor, records

    def predict_step(self, items, batch_idx):
        return self.records(items)

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        return batch  # items carry WCS objects and reasons; predict() moves the images itself


class _JournalWriter(BasePredictionWriter):
    """Appends each finished batch of a rank to its journal."""

    def __init__(self, partial: Path, identity: dict, run: str):
        super().__init__(write_interval="batch")
        self.partial, self.identity, self.run = partial, identity, run
        self.journal = None

    def setup(self, trainer, pl_module, stage):
        path = self.partial.with_name(f"{self.partial.name}.{self.run}.{trainer.global_rank}")
        self.journal = RowJournal(path, self.identity)

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx):
        self.journal.append(prediction)


def predict_fits_distributed(predictor, paths: Sequence[str | Path], catalog: str | Path, *, devices: int | str = 1,
                             num_nodes: int = 1, accelerator: str = "auto", batch_size: int = 64,
                             num_workers: int = 0, symmetrize: bool = False, refine: dict | None = None,
                             progress: bool = True, partial: str | Path | None = None, resume: bool = False,
                             overwrite: bool = False, **options):
    """Estimate (and with ``refine``, fit) FITS images on ``devices`` x ``num_nodes`` processes; the catalogue.

    ``options`` are those of :func:`lensnet.inference.catalog.predict_fits` (hdu, pixel_scale, center,
    sky_center, mask, cosmic_rays, keep_neighbours); ``refine`` holds the fit's arguments of
    :func:`lensnet.refine.catalog.refine_fits` (psf, spec, restarts, ...) [None: the network only]. The
    journals go beside ``partial`` [``<catalog>.partial``]; with ``resume``, the files earlier runs finished are
    not run again. Returns the catalogue on rank 0 (the caller writes it and removes the journals), None on the
    other ranks.
    """
    check_batching(batch_size, num_workers)
    dataset = fits_inputs(predictor, paths, **options)
    if refine is None:
        records = BatchEstimator(predictor, symmetrize)
        identity = run_identity("predict", predictor, dataset, mask=options.get("mask"), symmetrize=symmetrize,
                                batch_size=batch_size)
    else:
        records = BatchRefiner(predictor, dataset, **refine)
        identity = run_identity("refine", predictor, dataset, mask=options.get("mask"), batch_size=batch_size,
                                **records.identity())
    partial = Path(partial) if partial is not None else journal_path(catalog)
    run = _run_id()
    done = read_journals(partial, identity, resume=resume, overwrite=overwrite, skip_run=run)
    todo = Subset(dataset, [i for i in range(len(dataset)) if i not in done])
    if not len(todo):  # every file done by earlier runs: nothing to start processes for
        return _table(predictor, records, refine, sorted(done.values(), key=lambda r: r["index"]))
    loader = DataLoader(todo, batch_size=int(batch_size), num_workers=num_workers, collate_fn=list,
                        worker_init_fn=worker_init)
    trainer = L.Trainer(accelerator=accelerator, devices=devices, num_nodes=num_nodes,
                        strategy="ddp" if _world(devices, num_nodes) > 1 else "auto", logger=False,
                        enable_checkpointing=False, enable_progress_bar=progress,
                        callbacks=[_JournalWriter(partial, identity, run)], enable_model_summary=False)
    with warnings.catch_warnings():
        for message in (r".*does not have many workers.*", r".*isinstance\(treespec, LeafSpec\).*"):
            warnings.filterwarnings("ignore", message=message)
        trainer.predict(_CatalogModule(predictor, records), loader, return_predictions=False)
    trainer.strategy.barrier()
    if not trainer.is_global_zero:
        return None
    finished = sorted(read_journals(partial, identity, resume=True).values(), key=lambda r: r["index"])
    return _table(predictor, records, refine, finished)


def _table(predictor, records, refine, finished: list[dict]):
    return catalog_table([r["row"] for r in finished], predictor.card) if refine is None else records.table(finished)


def _run_id() -> str:
    """This run's name, shared by its processes (their journals' names): LENSNET_RUN_ID or the SLURM job, else
    drawn by the first process of the first node, which the processes Lightning starts inherit."""
    shared = os.environ.get(RUN_ID) or os.environ.get("SLURM_JOB_ID")
    if shared:
        return shared
    if os.environ.get("LOCAL_RANK", "0") == "0":
        if os.environ.get("NODE_RANK", "0") != "0":
            raise LensnetValueError(f"a run on several nodes needs a name shared by all: set {RUN_ID} to the same "
                                    "value on every node")
        os.environ[_DRAWN_RUN_ID] = uuid.uuid4().hex[:12]
    return os.environ[_DRAWN_RUN_ID]


def _world(devices, num_nodes: int) -> int:
    return (devices if isinstance(devices, int) else torch.cuda.device_count() or 1) * num_nodes
