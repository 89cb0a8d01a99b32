"""Benchmark a DiffRO step against a GRPO step on the same base, batch and machine.

    python -m local_lib.bin.benchmark_diffro --grpo-config conf/grpo_mini.yaml \\
        --diffro-config conf/diffro_mini.yaml --base-dir exp/tts_base/model \\
        --tokenizer dump/speech_tokenizer/tokenizer.pt --reward-asr exp/reward_ctc/model.pt \\
        --token2text exp/token2text/model.pt --data-dir data/train --tokens dump/train/speech_tokens

Both methods take the GRPO config's ``rollout`` section (DiffRO's own is replaced), so with the
same seed they sample the same completions from the same base: the step costs differ only in
what each does with them. GRPO reads its reward from audio (the tokenizer's decoder,
Griffin-Lim, the reward ASR); DiffRO teacher-forces soft tokens and reads them with Token2Text,
rendering nothing. After ``--warmup`` untimed steps, ``--steps`` steps of each (rollout, reward,
one update) are timed; prints the mean time per step split into sampling, decoding, vocoding,
reward and update (the rest of the step: reference and policy passes, backward, optimizer), and
ends with ``diffro_step_speedup_vs_grpo=<ratio>`` (GRPO step time over DiffRO step time).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from local_lib.bin.train_grpo import checked_reward_asr
from local_lib.config import load_config
from local_lib.data.speech_tokens import PromptPool
from local_lib.models.codec_lm import CodecLM
from local_lib.models.speech_tokenizer import load_speech_tokenizer
from local_lib.models.token2text import load_token2text
from local_lib.rewards import build_rewards
from local_lib.rl.diffro_loop import DiffROLoop, DiffROLoopConfig
from local_lib.rl.grpo_loop import GRPOLoop, GRPOLoopConfig
from local_lib.rl.rollout import SpeechRenderer
from local_lib.train.method_entry import MethodLoop

PARTS = ("time/generate", "time/decode", "time/vocode", "time/reward")
METHODS = ("grpo", "diffro")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--grpo-config", type=Path, required=True, help="its rollout serves both")
    p.add_argument("--diffro-config", type=Path, required=True)
    p.add_argument("--base-dir", type=Path, required=True)
    p.add_argument("--tokenizer", type=Path, required=True)
    p.add_argument("--reward-asr", type=Path, required=True, help="GRPO's reward ASR checkpoint")
    p.add_argument("--token2text", type=Path, required=True, help="DiffRO's reward model")
    p.add_argument("--data-dir", type=Path, required=True, help="prompts (e.g. data/train)")
    p.add_argument("--tokens", type=Path, required=True, help="speech tokens of --data-dir")
    p.add_argument("--steps", type=int, default=3, help="timed steps per method (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-threads", type=int, default=1)
    args = p.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        p.error("need --steps >= 1 and --warmup >= 0")
    return args


def timed_steps(
    loop: MethodLoop, steps: int, warmup: int, lr: float
) -> tuple[list[dict[str, float]], list[Any]]:
    """Per timed step: the parts the loop logs and the step's wall time (``time/step``); and
    the batches of every step, so the two methods' samples can be compared. Every step starts
    from the base's weights (the update is made, then undone before the next step): after one
    update of each the two policies differ and would no longer draw the same completions."""
    policy = loop.policy
    base = copy.deepcopy(policy.state_dict())
    optimizer = torch.optim.AdamW(policy.parameters(), lr=lr)
    records, batches = [], []
    for step in range(warmup + steps):
        policy.load_state_dict(base)
        t0 = time.perf_counter()
        batch = loop.batch(step)
        loss, stats = loop.loss(policy, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        total = time.perf_counter() - t0
        batches.append(batch)
        if step >= warmup:
            records.append({**{k: stats.get(k, 0.0) for k in PARTS}, "time/step": total})
    return records, batches


def build_loops(args: argparse.Namespace) -> tuple[dict[str, MethodLoop], dict[str, float]]:
    """The two loops on copies of one base, and each method's learning rate."""
    grpo_cfg = load_config(args.grpo_config, GRPOLoopConfig)
    rollout = dataclasses.replace(grpo_cfg.rollout, reward_input="audio")
    grpo_cfg = dataclasses.replace(grpo_cfg, rollout=rollout)
    diffro_cfg = dataclasses.replace(
        load_config(args.diffro_config, DiffROLoopConfig), rollout=rollout
    )
    tokenizer = load_speech_tokenizer(args.tokenizer)
    scorer = checked_reward_asr("--reward-asr", args.reward_asr, tokenizer.mel_cfg, "audio")
    pool = PromptPool.load(args.data_dir, args.tokens, tokenizer.vocab_size)
    base = CodecLM.from_pretrained(args.base_dir)

    def renderer() -> SpeechRenderer:
        return SpeechRenderer(tokenizer, rollout.vocoder_iters, rollout.min_wav_s)

    rewards = build_rewards(grpo_cfg.rewards, {"scorer": scorer})
    loops = {
        "grpo": GRPOLoop(base.clone(), renderer(), rewards, pool, grpo_cfg, args.seed),
        "diffro": DiffROLoop(
            base.clone(), renderer(), load_token2text(args.token2text), pool, diffro_cfg,
            args.seed,
        ),
    }  # fmt: skip
    return loops, {"grpo": grpo_cfg.train.lr, "diffro": diffro_cfg.train.lr}


def same_samples(batches: dict[str, list[Any]]) -> bool:
    """Whether both methods sampled the same completions at every step."""
    pairs = zip(batches["grpo"], batches["diffro"], strict=True)
    return all(
        torch.equal(g.scored.rollout.completion_ids, d.scored.rollout.completion_ids)
        for g, d in pairs
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.num_threads)
    loops, lrs = build_loops(args)
    records, batches = {}, {}
    for name in METHODS:
        records[name], batches[name] = timed_steps(loops[name], args.steps, args.warmup, lrs[name])
    if not same_samples(batches):
        raise RuntimeError("GRPO and DiffRO sampled different completions: not the same batch")
    means = {
        m: {k: float(np.mean([r[k] for r in records[m]])) for k in (*PARTS, "time/step")}
        for m in METHODS
    }
    for m in METHODS:
        means[m]["time/update"] = means[m]["time/step"] - sum(means[m][k] for k in PARTS)
    n = len(batches["grpo"][0].scored.prompts)
    print(f"# DiffRO vs GRPO step cost: {args.steps} timed steps (after {args.warmup} untimed) "
          f"of {n} completions each, {args.num_threads} thread(s)")  # fmt: skip
    print()
    print("| part (s per step) | " + " | ".join(METHODS) + " |")
    print("|---|" + "---|" * len(METHODS))
    for key in (*PARTS, "time/update"):
        row = " | ".join(f"{means[m][key]:.3f}" for m in METHODS)
        print(f"| {key.split('/')[1]} | {row} |")
    print("| **step** | " + " | ".join(f"**{means[m]['time/step']:.3f}**" for m in METHODS) + " |")
    print()
    ratio = means["grpo"]["time/step"] / means["diffro"]["time/step"]
    print(f"diffro_step_speedup_vs_grpo={ratio:.2f}")


if __name__ == "__main__":
    main()
