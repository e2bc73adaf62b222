"""`spot-eval`: score a prediction CSV against an annotation CSV (micro, macro, overall)."""
from __future__ import annotations

import argparse
import json
import sys

from mespot.data.annotations import END_ZERO, load_annotations
from mespot.eval.metrics import SCOPES, evaluate, read_predictions
from mespot.intervals import IOU_RULES

RULE_HELP = ("megc (default): IoU >= 0.5 on inclusive frame sets, one-to-one matching; "
             "reference: the AUW-GCN code's rule, IoU > 0.5 on end-start lengths, argmax per ground truth")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="spot-eval",
        description="Score spotted intervals against ground truth. Counts are pooled over all videos; "
                    "'overall' sums micro and macro counts before the ratios.",
        epilog="PRED columns: video_name,start_frame,end_frame,score,type_idx (1 macro, 2 micro). "
               "GT is an annotation CSV (subject,video_name,start_frame,apex_frame,end_frame,type_idx,au); "
               "its frame numbers are used as stored, so a row with end_frame 0 can never match.")
    p.add_argument("--gt", required=True, metavar="GT.csv", help="ground-truth annotation CSV")
    p.add_argument("--pred", required=True, metavar="PRED.csv", help="prediction CSV")
    p.add_argument("--rule", choices=IOU_RULES, default="megc", help=RULE_HELP)
    p.add_argument("--json", action="store_true",
                   help="print one JSON object {micro|macro|overall: {tp, n, m, precision, recall, f1}}")
    return p


def _print_table(result: dict, rule: str, n_unmatchable: int) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"spotting scores (rule: {rule})")
    for name in ("", "TP", "N (pred)", "M (gt)", "precision", "recall", "F1"):
        table.add_column(name, justify="left" if not name else "right")
    for scope in SCOPES:
        r = result[scope]
        table.add_row(scope, str(r["tp"]), str(r["n"]), str(r["m"]),
                      f"{r['precision']:.4f}", f"{r['recall']:.4f}", f"{r['f1']:.4f}")
    console = Console()
    console.print(table)
    if n_unmatchable:
        console.print(f"note: {n_unmatchable} ground-truth row(s) with end_frame 0 count in M but cannot match")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        gt = load_annotations(args.gt)
        pred = read_predictions(args.pred)
    except ValueError as exc:
        print(f"spot-eval: error: {exc}", file=sys.stderr)
        return 2
    result = evaluate(gt.rows, pred, args.rule)
    if args.json:
        print(json.dumps(result))
    else:
        _print_table(result, args.rule, gt.issue_counts()[END_ZERO])
    return 0


if __name__ == "__main__":
    sys.exit(main())
