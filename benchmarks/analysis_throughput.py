"""Full analysis (every label, not only sentiment) against bare nagisa tagging of the same texts,
side by side in one process. Prints one JSON object with both rates and their ratio (target:
full analysis at ≥ 0.70 of bare tagging).

    python benchmarks/analysis_throughput.py [--tsv FILE] [--repeat 3] [--model DIR | --lexicon]

The full analysis uses the shipped label model (as the pipeline does) unless --model or
--lexicon says otherwise; the JSON also gives the model's load time and the process's peak RSS
(targets: ≤ 2 s, ≤ 300 MB).

Texts: the demo feed's posts (written by the team) by default, or the text column of a labelled
TSV file (`id<TAB>text<TAB>label`). Both passes are warmed up first, then run `--repeat` times
alternately; the best time of each is kept, so a noisy neighbour hurts neither side more.

The ratio can exceed 1: the analysis tags long posts in sentence chunks of at most 500
characters (nagisa's cost grows faster than the length) and sends English posts to VADER,
while bare tagging hands nagisa every text whole.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connector.analysis import analyse_text  # noqa: E402
from connector.analysis.evaluation import read_labelled_tsv  # noqa: E402
from connector.analysis.text import normalize  # noqa: E402
from connector.config import DEMO_FEED  # noqa: E402


def demo_texts() -> list[str]:
    return [json.loads(line)["text"] for line in DEMO_FEED.read_text(encoding="utf-8").splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tsv", type=Path, help="labelled TSV file whose texts to use (default: the demo feed)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N texts")
    parser.add_argument("--model", type=Path, default=None, help="a model folder for the full analysis")
    parser.add_argument("--lexicon", action="store_true", help="the lexicon and rules alone, no model")
    args = parser.parse_args()
    texts = [row.text for row in read_labelled_tsv(args.tsv)[0]] if args.tsv else demo_texts()
    texts = texts[:args.limit] if args.limit else texts
    from connector.analysis.labeller import default_model, load_model_folder

    started = time.perf_counter()
    model = None if args.lexicon else (load_model_folder(args.model) if args.model else default_model())
    load_seconds = time.perf_counter() - started

    import nagisa

    # Bare tagging gets the normalised text the analysis tags (HTML, URLs, @mentions removed),
    # prepared outside the timing, so it pays for none of the analysis' own steps. nagisa's
    # result is lazy: tagging happens when .words/.postags are read, so both are read.
    normalised = [normalize(text) for text in texts]

    def bare() -> None:
        for text in normalised:
            tagged = nagisa.tagging(text)
            tagged.words, tagged.postags

    def full() -> None:
        for text in texts:
            analyse_text(text, model=model)

    bare(), full()  # warm-up: nagisa's model, the lexicons, VADER
    best = {"bare": float("inf"), "full": float("inf")}
    for _ in range(args.repeat):
        for name, run in (("bare", bare), ("full", full)):
            started = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - started)
    bare_rate, full_rate = len(texts) / best["bare"], len(texts) / best["full"]
    print(json.dumps({
        "texts": len(texts),
        "source": str(args.tsv) if args.tsv else "connector/demo/feed.jsonl",
        "mean_chars": round(sum(len(t) for t in texts) / len(texts), 1),
        "nagisa_tagging_texts_per_s": round(bare_rate, 1),
        "full_analysis_texts_per_s": round(full_rate, 1),
        "ratio": round(full_rate / bare_rate, 3),
        "target_ratio": 0.70,
        "model": model.name if model else None,
        "model_load_s": round(load_seconds, 3) if model else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }, indent=1))


if __name__ == "__main__":
    main()
