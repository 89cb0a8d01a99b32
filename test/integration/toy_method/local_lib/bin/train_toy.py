"""Stage 5 of the toy method (local_lib/rl/toy.py): the codec-LM command contract of
local_lib/train/method_entry.py; it takes no reward model."""

from __future__ import annotations

from local_lib.rl.toy import ToyConfig, ToyLoop
from local_lib.train.method_entry import MethodContext, run_codec_lm_method


def build(ctx: MethodContext, cfg: ToyConfig) -> ToyLoop:
    return ToyLoop(ctx.lm, ctx.tokenizer, ctx.prompt_pool(), cfg, ctx.args.seed, ctx.dist.rank)


def main(argv: list[str] | None = None) -> None:
    run_codec_lm_method(argv, __doc__, ToyConfig, build)


if __name__ == "__main__":
    main()
