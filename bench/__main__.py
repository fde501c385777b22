"""``python -m bench``: the speech benchmark (accuracy, latency, memory) -> BENCHMARKS.md.

Run from the repository root (``make bench``): ``bench/`` is not installed with the product.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from appliance.errors import VoiceKeyError
from bench.clips import REPO_ROOT


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's command line."""
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run every speech-to-text variant (stock faster-whisper transcribe(), padded greedy, "
                    "short window, int8/float32, tiny.en/base) on the same clips, each in its own process, "
                    "and write a Markdown table and a latency-vs-WER plot into BENCHMARKS.md.")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="more logging (-v info, -vv debug)")
    p.add_argument("--manifest", type=Path, default=None,
                   help="JSONL manifest of real speech (default: $VOICEKEY_SPEECH_DIR or "
                        "../shared/speech next to the repository)/manifest.jsonl")
    p.add_argument("--quick", action="store_true", help="a few clips and three variants (smoke test)")
    p.add_argument("--variant", action="append", default=[], metavar="TEXT",
                   help="only variants whose name contains TEXT (repeatable)")
    p.add_argument("--no-piper", action="store_true", help="skip the Piper-generated speech")
    p.add_argument("--output", type=Path, default=REPO_ROOT / "BENCHMARKS.md",
                   help="Markdown file to update between the speech-bench markers "
                        "(default: BENCHMARKS.md in the repository)")
    p.add_argument("--no-write", action="store_true", help="print results only; do not touch files")
    p.add_argument("--plot", type=Path, default=REPO_ROOT / "docs" / "speech-bench.png",
                   help="where the latency-vs-WER PNG goes (default: docs/speech-bench.png)")
    p.add_argument("--rounds", type=int, default=None,
                   help="interleave the variants in this many rounds, each on a share of the clips "
                        "(default 3; 1 with --quick)")
    p.add_argument("--json", type=Path, default=None, help="also write the raw per-clip results here")
    return p


def run(args: argparse.Namespace) -> int:
    """Run the benchmark; exit 0 when every variant ran."""
    from appliance.errors import ConfigError
    from bench.speech import FULL_VARIANTS, QUICK_VARIANTS, default_manifest, run_bench

    variants = QUICK_VARIANTS if args.quick else FULL_VARIANTS
    if args.variant:
        variants = tuple(v for v in FULL_VARIANTS if any(t.lower() in v.name.lower() for t in args.variant))
        if not variants:
            raise ConfigError(f"no benchmark variant matches {args.variant}",
                              fix="choose from: " + "; ".join(v.name for v in FULL_VARIANTS))
    run_bench(args.manifest or default_manifest(), variants, args.quick,
              None if args.no_write else args.output, None if args.no_write else args.plot,
              json_out=args.json, piper=not args.no_piper, progress=lambda m: print(m, flush=True),
              rounds=args.rounds or (1 if args.quick else 3))
    if not args.no_write:
        print(f"wrote {args.output} and {args.plot}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run, and turn a VoiceKey error into its message and exit status 2."""
    args = build_parser().parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run(args)
    except VoiceKeyError as exc:
        print(f"python -m bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
