"""Lightning 1.x trainer keys, translated for Lightning 2.

Projects from the official serotiny cookiecutter carry keys such as
``gpus:``; they are translated (``accelerator``/``devices``) or dropped with
one warning instead of crashing the Trainer.
"""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig, open_dict

RENAMED = {
    "replace_sampler_ddp": "use_distributed_sampler",
    "reload_dataloaders_every_epoch": "reload_dataloaders_every_n_epochs",
}
log = logging.getLogger("serotiny")

REMOVED = frozenset({
    "progress_bar_refresh_rate", "weights_summary", "flush_logs_every_n_steps",
    "checkpoint_callback", "auto_select_gpus", "terminate_on_nan", "stochastic_weight_avg",
    "auto_lr_find", "auto_scale_batch_size", "track_grad_norm", "amp_backend", "amp_level",
    "move_metrics_to_cpu", "multiple_trainloader_mode", "prepare_data_per_node",
    "weights_save_path", "log_gpu_memory", "process_position", "truncated_bptt_steps",
    "resume_from_checkpoint",
})
DEVICE_KEYS = {"gpus": "gpu", "tpu_cores": "tpu", "ipus": "ipu", "num_processes": "cpu"}


def _devices(node: DictConfig, key: str, notes: list[str]) -> None:
    value = node.pop(key)
    if value in (None, 0, "0", [], ""):
        notes.append(f"dropped {key}: {value}")
        return
    node["accelerator"] = DEVICE_KEYS[key]
    node["devices"] = value
    notes.append(f"{key}: {value} -> accelerator: {DEVICE_KEYS[key]}, devices: {value}")


def translate_trainer(node: Any) -> list[str]:
    """Rewrite 1.x keys of a trainer config in place; return what changed."""
    if not isinstance(node, DictConfig):
        return []
    notes: list[str] = []
    with open_dict(node):
        for key in [k for k in DEVICE_KEYS if k in node]:
            _devices(node, key, notes)
        for old, new in RENAMED.items():
            if old in node:
                node[new] = node.pop(old)
                notes.append(f"{old} -> {new}")
        for key in sorted(REMOVED & set(node.keys())):
            node.pop(key)
            notes.append(f"dropped {key}")
    if notes:
        log.warning("trainer config uses Lightning 1.x keys, translated for Lightning 2: %s",
                    "; ".join(notes))
    return notes
