"""The benchmark command runs end to end on a tiny batch and ends with the speedup line."""

from __future__ import annotations

import re

from local_lib.bin.benchmark_align import main


def test_benchmark_prints_table_and_last_line(capsys):
    argv = ["--batch", "3", "--min-text", "2", "--max-text", "6", "--min-frames", "6"]
    assert main(argv + ["--max-frames", "12", "--repeats", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"mas_speedup_vs_espnet_numba=\d+\.\d\d", lines[-1])
    mas_rows = [line for line in lines if line.startswith("| MAS |")]
    assert len(mas_rows) == 7 and all(row.endswith("| yes |") for row in mas_rows)
    assert sum(line.startswith("| W3AR metrics |") for line in lines) == 3
