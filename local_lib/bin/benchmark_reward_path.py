"""Benchmark GRPO steps with the reward read from audio against the reward read from log-mel.

    python -m local_lib.bin.benchmark_reward_path --config conf/grpo_mini.yaml \\
        --base-dir exp/tts_base/model --tokenizer dump/speech_tokenizer/tokenizer.pt \\
        --reward-model exp/reward_ctc/model.pt --data-dir data/dev --tokens dump/dev/speech_tokens

Runs ``--steps`` GRPO steps (rollout, reward, one update) from the same base twice: with the
config's rewards on audio (tokenizer decoder -> Griffin-Lim -> the reward ASR's own log-mel) and
on the decoder's log-mel directly. Both runs sample the same completions in their first step, so
the rewards of that step are compared sample by sample (Spearman's rho of the totals and of each
component). Prints the mean time per step split into sampling, decoding, vocoding, reward and
update for each path, and ends with ``reward_step_speedup_mel_vs_audio=<ratio>`` (audio step
time over mel step time).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from local_lib.config import load_config
from local_lib.data.speech_tokens import PromptPool
from local_lib.models.codec_lm import CodecLM
from local_lib.models.evaluators import load_reward_asr
from local_lib.models.speech_tokenizer import load_speech_tokenizer
from local_lib.rewards import build_rewards
from local_lib.rewards.asr_rewards import check_reads_mel
from local_lib.rl.grpo_loop import GRPOLoop, GRPOLoopConfig
from local_lib.rl.rollout import SpeechRenderer

LOG = logging.getLogger("benchmark_reward_path")
PARTS = ("time/generate", "time/decode", "time/vocode", "time/reward", "time/update")
PATHS = ("audio", "mel")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config", type=Path, required=True, help="a GRPO config (rollout, rewards)")
    p.add_argument("--base-dir", type=Path, required=True)
    p.add_argument("--tokenizer", type=Path, required=True)
    p.add_argument("--reward-model", type=Path, required=True, help="the reward ASR checkpoint")
    p.add_argument("--data-dir", type=Path, required=True, help="prompts (e.g. data/dev)")
    p.add_argument("--tokens", type=Path, required=True, help="speech tokens of --data-dir")
    p.add_argument("--steps", type=int, default=3, help="GRPO steps per path (default 3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-threads", type=int, default=1)
    return p.parse_args(argv)


def timed_steps(loop: GRPOLoop, steps: int, lr: float) -> tuple[list[dict[str, float]], dict]:
    """``steps`` rollout + update steps; per-step times of each part, and the first rollout."""
    optimizer = torch.optim.AdamW(loop.policy.parameters(), lr=lr)
    records, first = [], None
    for step in range(steps):
        batch = loop.make_rollout(step)
        first = first or batch
        t0 = time.perf_counter()
        loss, _ = loop.loss(loop.policy, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        records.append({**batch.scored.timings, "time/update": time.perf_counter() - t0})
    return records, first


def agreement(audio: GRPOLoop, mel: GRPOLoop, first_audio, first_mel) -> dict[str, float]:
    """Spearman's rho between the two paths' rewards of the same completions."""
    same = torch.equal(
        first_audio.scored.rollout.completion_ids, first_mel.scored.rollout.completion_ids
    )
    if not same:
        raise RuntimeError("the two paths sampled different completions: cannot pair their rewards")
    pairs = {"total": (first_audio.scored.rewards.total, first_mel.scored.rewards.total)}
    for name, values in first_audio.scored.rewards.components.items():
        pairs[name] = (values, first_mel.scored.rewards.components[name])
    return {
        name: float(spearmanr(a.numpy(), m.numpy()).statistic) for name, (a, m) in pairs.items()
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.num_threads)
    cfg = load_config(args.config, GRPOLoopConfig)
    tokenizer = load_speech_tokenizer(args.tokenizer)
    scorer = load_reward_asr(args.reward_model)
    check_reads_mel(scorer, tokenizer.mel_cfg)
    pool = PromptPool.load(args.data_dir, args.tokens, tokenizer.vocab_size)
    base = CodecLM.from_pretrained(args.base_dir)
    loops, records, firsts = {}, {}, {}
    for path in PATHS:
        path_cfg = dataclasses.replace(
            cfg, rollout=dataclasses.replace(cfg.rollout, reward_input=path)
        )
        lm = base.clone()
        renderer = SpeechRenderer(tokenizer, cfg.rollout.vocoder_iters, cfg.rollout.min_wav_s)
        rewards = build_rewards(cfg.rewards, {"scorer": scorer})
        loops[path] = GRPOLoop(lm, renderer, rewards, pool, path_cfg, args.seed)
        records[path], firsts[path] = timed_steps(loops[path], args.steps, cfg.train.lr)
    rho = agreement(loops["audio"], loops["mel"], firsts["audio"], firsts["mel"])
    n = len(firsts["audio"].scored.prompts)
    means = {
        p: {k: float(np.mean([r.get(k, 0.0) for r in records[p]])) for k in PARTS} for p in PATHS
    }
    totals = {p: sum(means[p].values()) for p in PATHS}
    print(
        f"# reward path benchmark: {args.steps} steps of {n} completions, "
        f"{args.num_threads} thread(s)"
    )
    print()
    print("| part (s per step) | " + " | ".join(PATHS) + " |")
    print("|---|" + "---|" * len(PATHS))
    for key in PARTS:
        print(
            f"| {key.split('/')[1]} | " + " | ".join(f"{means[p][key]:.3f}" for p in PATHS) + " |"
        )
    print("| **step** | " + " | ".join(f"**{totals[p]:.3f}**" for p in PATHS) + " |")
    print()
    print(f"Spearman rho, audio-path vs mel-path rewards of the same {n} completions (first step):")
    for name, value in rho.items():
        print(f"  {name}: {value:.3f}")
    print(f"reward_step_speedup_mel_vs_audio={totals['audio'] / totals['mel']:.2f}")


if __name__ == "__main__":
    main()
