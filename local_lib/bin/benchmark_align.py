"""Benchmark the alignment kernels against the NumPy references, ESPnet's and glow-tts's MAS.

    python -m local_lib.bin.benchmark_align [--batch 16] [--repeats 20] [--threads 1]

Times every implementation on the same inputs (warm: an untimed call before each block of timed
calls, so compilation is excluded), checks that all MAS paths are identical, prints a table of
medians, minima and ratios of medians, and ends with ``mas_speedup_vs_espnet_numba=<ratio>``
(ESPnet's numba kernel over ours, both NumPy in/out). ``--threads 0`` gives the numba kernels
(ours and ESPnet's) every core; the default of 1 matches the single-threaded Cython kernel.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np
import torch

from local_lib.align.attention_metrics import W3ARConfig, attention_metrics
from local_lib.align.attention_metrics_reference import attention_metrics_reference
from local_lib.align.mas import monotonic_alignment_search
from local_lib.align.mas_reference import monotonic_alignment_search_reference
from local_lib.align.torch_api import attention_metrics_torch, monotonic_alignment_search_torch

log = logging.getLogger("benchmark_align")

OURS_MAS = "ours: monotonic_alignment_search (numba)"
ESPNET_MAS = "espnet2 maximum_path_numba (+ input copy)"


@dataclass(frozen=True)
class Inputs:
    """One benchmark batch in our layout [B, T_text, T_frames] plus the other layouts."""

    log_likelihood: np.ndarray
    text_lengths: np.ndarray
    frame_lengths: np.ndarray
    mask: np.ndarray  # float32 [B, T_text, T_frames]
    attention: np.ndarray
    word_index: np.ndarray
    speech_lengths: np.ndarray


@dataclass(frozen=True)
class Candidate:
    """One implementation; ``run`` returns its result (for MAS a path [B, T_text, T_frames])."""

    task: str
    name: str
    level: str  # "numpy" or "torch" in/out: ratios divide by the baseline of the same level
    run: Callable[[], object]
    slow: bool = False  # one timed call per block
    baseline: bool = False  # ours, the row the others of its task and level are compared with


@dataclass(frozen=True)
class Row:
    task: str
    name: str
    level: str
    baseline: bool
    median_ms: float
    min_ms: float
    same_path: str


def make_inputs(args: argparse.Namespace) -> Inputs:
    """Grad-TTS-like log-likelihoods (Gaussian prior of 80-dim frames) and softmax attention."""
    rng = np.random.default_rng(args.seed)
    text = rng.integers(args.min_text, args.max_text + 1, args.batch)
    frames = rng.integers(args.min_frames, args.max_frames + 1, args.batch)
    shape = (args.batch, int(text.max()), int(frames.max()))
    mu = rng.standard_normal((args.batch, shape[1], 80)).astype(np.float32)
    y = rng.standard_normal((args.batch, shape[2], 80)).astype(np.float32)
    log_likelihood = (
        mu @ y.transpose(0, 2, 1)
        - 0.5 * (mu**2).sum(-1)[:, :, None]
        - 0.5 * (y**2).sum(-1)[:, None, :]
        - 0.5 * 80 * np.log(2 * np.pi)
    ).astype(np.float32)
    mask = np.zeros(shape, np.float32)
    for b in range(args.batch):
        mask[b, : text[b], : frames[b]] = 1.0
    logits = rng.standard_normal(shape).astype(np.float32) * 3.0
    attention = np.exp(logits - logits.max(-1, keepdims=True)) * mask
    attention /= np.maximum(attention.sum(-1, keepdims=True), 1e-9)
    word_index = np.full(shape[:2], -1, np.int64)
    for b in range(args.batch):
        word_index[b, : text[b]] = np.cumsum(rng.random(text[b]) < 0.4)
        word_index[b, : text[b]] -= word_index[b, 0]
    return Inputs(
        log_likelihood,
        text,
        frames,
        mask,
        attention.astype(np.float32),
        word_index,
        (frames // 2).astype(np.int64),
    )


def time_in_blocks(
    candidates: list[Candidate], repeats: int, rng: np.random.Generator, blocks: int = 5
) -> dict[str, list[float]]:
    """Wall times in ms of ``repeats`` calls per candidate (one per block for slow ones).

    Calls run in blocks: each block visits the candidates in a fresh random order and gives
    each an untimed call (compilation, warm caches: every implementation is timed on inputs
    already in cache) and then back-to-back timed calls. Spreading the blocks over the run
    lets load bursts on a shared machine hit all implementations alike.
    """
    times: dict[str, list[float]] = {c.name: [] for c in candidates}
    per_block = -(-repeats // blocks)
    for block in range(blocks):
        log.info("block %d/%d", block + 1, blocks)
        for i in rng.permutation(len(candidates)):
            c = candidates[i]
            c.run()
            for _ in range(1 if c.slow else per_block):
                start = time.perf_counter()
                c.run()
                times[c.name].append((time.perf_counter() - start) * 1e3)
    return times


def _espnet() -> tuple[Callable, Callable, bool]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from espnet2.gan_tts.vits import monotonic_align
    return monotonic_align.maximum_path, monotonic_align.maximum_path_numba, (
        monotonic_align.is_cython_avalable
    )


def mas_candidates(x: Inputs) -> list[Candidate]:
    """Every MAS implementation on the same batch, each in its own API's layout."""
    from monotonic_alignment_search import maximum_path_cython
    from monotonic_alignment_search.core import maximum_path_c

    espnet_api, espnet_numba, espnet_has_cython = _espnet()
    text32, frames32 = x.text_lengths.astype(np.int32), x.frame_lengths.astype(np.int32)
    feats_first = np.ascontiguousarray(x.log_likelihood.transpose(0, 2, 1))
    feats_first_t = torch.from_numpy(feats_first)
    mask_feats_first = torch.from_numpy(np.ascontiguousarray(x.mask.transpose(0, 2, 1)))
    ll_t, mask_t = torch.from_numpy(x.log_likelihood), torch.from_numpy(x.mask)
    text_t, frames_t = torch.from_numpy(x.text_lengths), torch.from_numpy(x.frame_lengths)

    def ours() -> np.ndarray:
        return monotonic_alignment_search(x.log_likelihood, x.text_lengths, x.frame_lengths).path

    def ours_torch() -> np.ndarray:
        return monotonic_alignment_search_torch(ll_t, text_t, frames_t)[0].numpy()

    def reference() -> np.ndarray:
        args = (x.log_likelihood, x.text_lengths, x.frame_lengths)
        return monotonic_alignment_search_reference(*args).path

    def espnet_core() -> np.ndarray:
        path = np.zeros(feats_first.shape, np.int32)
        espnet_numba(path, feats_first.copy(), frames32, text32)  # it overwrites its input
        return path.transpose(0, 2, 1)

    def espnet_torch() -> np.ndarray:
        return espnet_api(feats_first_t, mask_feats_first).numpy().transpose(0, 2, 1)

    def glow_core() -> np.ndarray:
        path = np.zeros(x.log_likelihood.shape, np.int32)
        maximum_path_c(path, x.log_likelihood.copy(), text32, frames32)  # overwrites its input
        return path

    def glow_torch() -> np.ndarray:
        return maximum_path_cython(ll_t, mask_t).numpy()

    espnet_kind = "Cython" if espnet_has_cython else "numba fallback, Cython not built"
    glow = "monotonic_alignment_search"
    return [
        Candidate("MAS", OURS_MAS, "numpy", ours, baseline=True),
        Candidate("MAS", "ours: torch wrapper", "torch", ours_torch, baseline=True),
        Candidate("MAS", "ours: NumPy reference", "numpy", reference, slow=True),
        Candidate("MAS", ESPNET_MAS, "numpy", espnet_core),
        Candidate("MAS", f"espnet2 maximum_path (torch; {espnet_kind})", "torch", espnet_torch),
        Candidate("MAS", f"{glow} maximum_path_c (Cython + input copy)", "numpy", glow_core),
        Candidate("MAS", f"{glow} maximum_path_cython (torch)", "torch", glow_torch),
    ]


def metric_candidates(x: Inputs) -> list[Candidate]:
    config = W3ARConfig()
    args = (x.attention, x.text_lengths, x.frame_lengths, x.word_index, x.speech_lengths, config)
    targs = tuple(torch.from_numpy(a) for a in args[:5]) + (config,)
    task = "W3AR metrics"
    return [
        Candidate(task, "ours: attention_metrics (numba)", "numpy",
                  lambda: attention_metrics(*args), baseline=True),
        Candidate(task, "ours: torch wrapper", "torch", lambda: attention_metrics_torch(*targs),
                  baseline=True),
        Candidate(task, "ours: NumPy reference", "numpy",
                  lambda: attention_metrics_reference(*args), slow=True),
    ]  # fmt: skip


def run(args: argparse.Namespace) -> list[Row]:
    x = make_inputs(args)
    rows = []
    for candidates in (mas_candidates(x), metric_candidates(x)):
        log.info("timing %s: %d implementations", candidates[0].task, len(candidates))
        times = time_in_blocks(candidates, args.repeats, np.random.default_rng(args.seed))
        first_path = None
        for c in candidates:
            same = ""
            if c.task == "MAS":
                path = np.asarray(c.run(), dtype=bool)
                first_path = path if first_path is None else first_path
                same = "yes" if np.array_equal(path, first_path) else "NO"
            ms = times[c.name]
            rows.append(
                Row(c.task, c.name, c.level, c.baseline, statistics.median(ms), min(ms), same)
            )
    return rows


def format_table(rows: list[Row]) -> str:
    ours = {(r.task, r.level): r.median_ms for r in rows if r.baseline}
    header = "| task | implementation | median ms | min ms | x slower than ours | same path |"
    lines = [header, "|---|---|---:|---:|---:|---|"]
    for r in rows:
        ratio = r.median_ms / ours[(r.task, r.level)]
        lines.append(
            f"| {r.task} | {r.name} | {r.median_ms:.3f} | {r.min_ms:.3f} | {ratio:.2f} |"
            f" {r.same_path} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--min-text", type=int, default=50)
    parser.add_argument("--max-text", type=int, default=150)
    parser.add_argument("--min-frames", type=int, default=300)
    parser.add_argument("--max-frames", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per implementation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="numba threads for our kernels and ESPnet's (0: all cores). Default 1: the same "
        "resources as the single-threaded Cython kernel, and stable on a shared machine",
    )
    args = parser.parse_args(argv)
    if args.min_frames < args.max_text:
        parser.error("--min-frames must be >= --max-text so every item has an alignment")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    numba.set_num_threads(args.threads or numba.config.NUMBA_NUM_THREADS)
    rows = run(args)
    print(
        f"B={args.batch}, T_text {args.min_text}-{args.max_text}, T_frames "
        f"{args.min_frames}-{args.max_frames}, float32, seed {args.seed}, {args.repeats} runs; "
        f"numba threads {numba.get_num_threads()} ({numba.threading_layer()}), "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    print(format_table(rows))
    print(
        "Ratios divide by ours at the same level (NumPy in/out or torch in/out). The glow-tts "
        "Cython kernel is single-threaded as shipped; the numba kernels (ours, ESPnet's) use "
        "the numba threads above."
    )
    ours = next(r for r in rows if r.name == OURS_MAS)
    espnet = next(r for r in rows if r.name == ESPNET_MAS)
    differ = any(r.same_path == "NO" for r in rows)
    if differ:
        log.error("MAS paths differ between implementations (see the table)")
    print(f"mas_speedup_vs_espnet_numba={espnet.median_ms / ours.median_ms:.2f}")
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
