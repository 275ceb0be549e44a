"""A tiny training checkpoint in the format of run_training, shared by the tests through the
``write_tiny_checkpoint`` fixture of ``tests/conftest.py``."""

import torch

from lensnet.networks import create_model
from lensnet.simulate.config import get_preset
from lensnet.training.config import TrainConfig
from lensnet.training.module import LensRegressor
from lensnet.training.checkpoint import CHECKPOINT_KEY

SMALL_KWARGS = {"widths": [8, 16, 16, 16], "stem_width": 8}


def write_tiny_checkpoint(path, preset: str = "tiny", steps: int = 7, seed: int = 0):
    """A randomly initialised lensnet_resnet_small checkpoint in the format of run_training.

    Every weight and normalisation statistic is perturbed so that a round trip that dropped or
    mixed up any tensor would change the predictions.
    """
    config = TrainConfig(model="lensnet_resnet_small", model_kwargs=dict(SMALL_KWARGS), simulation=preset,
                         batch_size=4, seed=seed, devices=1, precision="32-true")
    torch.manual_seed(seed)
    backbone = create_model(config.model, in_chans=1, num_outputs=5, **config.model_kwargs)
    module = LensRegressor(backbone, target_mean=[1.0, 0.0, 0.0, 0.0, 0.0], target_std=[0.5, 0.2, 0.2, 0.1, 0.1])
    with torch.no_grad():
        for name, tensor in module.model.backbone.state_dict().items():
            if tensor.is_floating_point():
                tensor.add_(0.05 * torch.randn_like(tensor))
                if "running_var" in name:
                    tensor.abs_()
        module.model.residual_rms.copy_(torch.tensor([0.1, 0.05, 0.05, 0.02, 0.02]))
    ckpt = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams), "global_step": steps,
            CHECKPOINT_KEY: {"train_config": config.to_dict(), "in_chans": 1, "lensnet_version": "0.1.0",
                             "simulation": get_preset(preset).to_dict(), "earlier_stages": []}}
    torch.save(ckpt, path)
    return path
