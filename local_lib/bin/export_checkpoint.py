"""Write a codec-LM model directory from a stage-5 training checkpoint.

    $ python -m local_lib.bin.export_checkpoint --base-dir exp/tts_base/model \\
        --checkpoint exp/tts_grpo/checkpoints/checkpoint_00000200.pt \\
        --out-dir exp/tts_grpo/model_200

Stage 5 keeps the trainer's checkpoints (the policy's weights with optimizer and RNG state)
along the way, but stages 6-8 read model directories. Exporting a checkpoint lets a run be
scored at several step counts on dev without training once per count: with a constant
learning rate, the checkpoint at step k holds the same weights as a run of ``num_steps: k``.

The policy module of a method wraps the LM (GRPO's ``PolicyLogProbs`` holds it as
``lm_model``), so its state-dict keys carry a prefix; the prefix is found by matching the keys
against the base LM's, and a checkpoint that fits no prefix is an error naming it.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping
from pathlib import Path

import torch

from local_lib.models.codec_lm import CodecLM

LOG = logging.getLogger(__name__)


def lm_state(state: Mapping[str, torch.Tensor], lm_keys: set[str], where: str) -> dict:
    """The entries of ``state`` that are the LM's, with the wrapper's prefix taken off."""
    prefixes = {k[: len(k) - len(lk)] for k in state for lk in lm_keys if k.endswith(lk)}
    for prefix in sorted(prefixes, key=len):
        found = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if set(found) == lm_keys:
            return found
    raise ValueError(
        f"{where}: no prefix of its {len(state)} model keys gives the base LM's "
        f"{len(lm_keys)} parameters (a checkpoint of another model?)"
    )


def export_checkpoint(base_dir: Path, checkpoint: Path, out_dir: Path) -> int:
    """Save the base LM with the checkpoint's weights to ``out_dir``; returns the step."""
    if not checkpoint.is_file():
        raise FileNotFoundError(f"{checkpoint}: no such checkpoint")
    lm = CodecLM.from_pretrained(base_dir)
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    if not isinstance(state, dict) or "model" not in state:
        raise ValueError(f"{checkpoint}: not a trainer checkpoint (no 'model' entry)")
    lm.model.load_state_dict(lm_state(state["model"], set(lm.model.state_dict()), str(checkpoint)))
    lm.save_pretrained(out_dir)
    return int(state.get("step", -1))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--base-dir", type=Path, required=True, help="the CodecLM the run started from")
    p.add_argument("--checkpoint", type=Path, required=True, help="checkpoint_<step>.pt")
    p.add_argument("--out-dir", type=Path, required=True, help="model directory to write")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    step = export_checkpoint(args.base_dir, args.checkpoint, args.out_dir)
    LOG.info("wrote %s (step %d of %s)", args.out_dir, step, args.checkpoint)


if __name__ == "__main__":
    main()
