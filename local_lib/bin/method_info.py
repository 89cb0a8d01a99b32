"""Print a post-training method's spec as shell lines; tts_rl.sh evaluates them.

    $ python -m local_lib.bin.method_info grpo
    method_family=codec_lm
    method_curve_keys='reward/mean reward/asr_wer reward/asr_nll kl entropy'
    method_built=true
    method_reward_asr_view=true

A method is ``local_lib/rl/<name>.py`` with a module-level ``METHOD = MethodSpec(...)``
(``local_lib.rl.method_spec``); an unknown name exits 1 naming the known methods. ``--family F``
declares a method that has no spec yet: it prints family F, no curve keys and
``method_built=false`` (the recipe runs every stage but 5). For a method with a spec, F must be
its family.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from local_lib.rl.method_spec import FAMILIES, UnknownMethodError, find_method


def shell_lines(method: str, family: str | None) -> list[str]:
    """The lines for ``method``; ``family`` (may be None) as given by ``--family``."""
    try:
        spec = find_method(method)
    except UnknownMethodError:
        if family is None:
            raise
        family_of, keys, built, view = family, (), False, True
    else:
        if family not in (None, spec.family):
            raise ValueError(f"method {method!r} is of the {spec.family} family, not {family}")
        family_of, keys, built, view = spec.family, spec.curve_keys, True, spec.reward_asr_view
    return [
        f"method_family={family_of}",
        f"method_curve_keys={shlex.quote(' '.join(keys))}",
        f"method_built={str(built).lower()}",
        f"method_reward_asr_view={str(view).lower()}",
    ]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("method")
    p.add_argument(
        "--family",
        choices=FAMILIES,
        help="the family of a method not built yet (no local_lib/rl/<method>.py METHOD)",
    )
    args = p.parse_args(argv)
    try:
        lines = shell_lines(args.method, args.family)
    except (UnknownMethodError, ValueError) as err:
        sys.exit(str(err))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
