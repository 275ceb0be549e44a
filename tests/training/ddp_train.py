"""Two-process DDP training on the CPU (gloo), run as a script by test_train.py.

Usage: python ddp_train.py OUTPUT_DIR. Lightning launches the second rank by running this script
again; each rank writes its final weights and the batch seeds it trained on to OUTPUT_DIR.
"""

import sys
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback

from lensnet.training.config import TrainConfig
from lensnet.training.train import run_training
from toy_problem import ToySimulator

torch.set_num_threads(1)


class SaveRankState(Callback):
    """Each rank saves its weights and training seeds; the barrier keeps rank 0 alive until all have."""

    def __init__(self, out: Path, simulators: list):
        self.out, self.simulators = out, simulators

    def on_train_end(self, trainer, pl_module):
        seeds = self.simulators[-1].seeds_seen[-trainer.global_step:]
        torch.save({"state": pl_module.state_dict(), "seeds": seeds}, self.out / f"rank{trainer.global_rank}.pt")
        trainer.strategy.barrier()


def main(out: Path):
    simulators = []

    def factory(device, split):
        simulator = ToySimulator(device)
        if split == "train":
            simulators.append(simulator)
        return simulator

    config = TrainConfig(model="lensnet_resnet_small", model_kwargs={"widths": [8, 8, 8, 8], "stem_width": 8},
                         batch_size=8, max_steps=6, val_every_n_steps=3, checkpoint_every_n_steps=3,
                         num_val=16, num_test=16, num_stats=16, accelerator="cpu", output_dir=str(out / "run"))
    run_training(config, devices=2, num_nodes=1, simulator_factory=factory,
                 callbacks=[SaveRankState(out, simulators)], enable_progress_bar=False)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
