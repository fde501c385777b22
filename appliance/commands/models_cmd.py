"""``voicekey models``: which Whisper models are available offline, and where."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from appliance.stt.models import KNOWN_MODELS, ModelStore, default_cache_dir, list_models


def add_model_args(p: argparse.ArgumentParser, with_model: bool = True) -> None:
    """Options shared by every command that finds a model (models, transcribe)."""
    if with_model:
        p.add_argument("--model", default="tiny.en",
                       help=f"model name ({', '.join(KNOWN_MODELS)}) or a CTranslate2 model directory "
                            "(default: tiny.en)")
    p.add_argument("--model-dir", action="append", type=Path, default=[], metavar="DIR",
                   help="also look for models in DIR/<name>/ (repeatable; searched before packs)")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help=f"where split model packs are joined (default: {default_cache_dir()})")
    p.add_argument("--allow-download", action="store_true",
                   help="allow a faster-whisper hub download when no offline copy exists")


def store_from_args(args: argparse.Namespace) -> ModelStore:
    """The :class:`ModelStore` the shared model options describe."""
    return ModelStore(model_dirs=tuple(args.model_dir), cache_dir=args.cache_dir or default_cache_dir(),
                      allow_download=args.allow_download)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``voicekey models``."""
    p = sub.add_parser("models", help="list the Whisper models available offline and where they are",
                       description="List each known Whisper model, whether it is available offline "
                                   "(configured directories, installed PyPI packs) and its directory, "
                                   "or what to install.")
    p.add_argument("--json", action="store_true", help="one JSON object per model")
    p.add_argument("--join", action="store_true",
                   help="join split packs (base) into the cache now instead of on first use")
    add_model_args(p, with_model=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """List models; exit 0 if the default model (tiny.en) is available, else 1."""
    rows = list_models(store_from_args(args), join=args.join)
    if args.json:
        for row in rows:
            print(json.dumps({"name": row.name, "available": row.available, "where": row.where,
                              "source": row.source}))
    else:
        width = max(len(r.name) for r in rows)
        for row in rows:
            state = "yes" if row.available else "no "
            extra = f"  [{row.source}]" if row.available else ""
            print(f"{row.name:<{width}}  {state}  {row.where}{extra}")
    return 0 if any(r.name == "tiny.en" and r.available for r in rows) else 1
