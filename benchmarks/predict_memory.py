"""Does the final prediction pass's memory grow with the number of frames?

    .venv/bin/python benchmarks/predict_memory.py --frames 20000 100000 200000 --width 2048

Runs `training.epochs.predict_clips` (the pass that gives every clip its mean scores and penultimate
features after training) over synthetic frames, 100 per clip, with a stand-in network whose
descriptor is `--width` wide (DAN+'s is 2,048), each size in a fresh process, and prints each run's
peak resident memory beside a run that only builds the dataset and the network. The pass should add
the per-clip sums (clips x width x 8 bytes) and one batch, nothing per frame: the last column is the
growth per 100,000 frames fitted over the sizes. The frames are tiny (8 values), so the figure is the
pass's own memory, not the images'.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np


def measure(frames: int, width: int, per_clip: int, predict: bool) -> dict:
    """Peak RSS (MB) of one child process that builds the data and, with `predict`, runs the pass."""
    code = f"""
import json, resource, torch
from torch import nn
from torch.utils.data import TensorDataset
from impressions.training import epochs

class Net(nn.Module):
    feature_dim = {width}
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(8, {width})
        self.fc = nn.Linear({width}, 5)

torch.manual_seed(0)
n, clips = {frames}, {frames} // {per_clip}
data = TensorDataset(torch.rand(n, 8), torch.zeros(n, 5), torch.arange(n) // {per_clip})
net = Net()
if {predict}:
    scores, feats, counts = epochs.predict_clips(net, data, clips, lambda x, d, train: x, "cpu", 256)
    assert feats.shape == (clips, {width}) and counts.sum() == n
print(json.dumps({{"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, nargs="+", default=[20_000, 100_000, 200_000])
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--per-clip", type=int, default=100)
    args = parser.parse_args()
    rows = []
    print(f"{'frames':>8} {'clips':>6} {'data+net MB':>12} {'with pass MB':>13} {'pass adds MB':>13} "
          f"{'per-clip sums MB':>17}")  # fmt: skip
    for n in args.frames:
        base = measure(n, args.width, args.per_clip, predict=False)["peak_mb"]
        full = measure(n, args.width, args.per_clip, predict=True)["peak_mb"]
        sums = n // args.per_clip * (args.width + 5) * 8 / 2**20
        rows.append((n, full - base))
        clips = n // args.per_clip
        print(f"{n:>8} {clips:>6} {base:>12.0f} {full:>13.0f} {full - base:>13.0f} {sums:>17.1f}")
    if len(rows) > 1:
        x, y = np.array(rows, dtype=float).T
        slope = np.polyfit(x, y, 1)[0] * 100_000
        print(f"growth of the pass's memory: {slope:.0f} MB per 100,000 frames ({len(rows)} sizes)")


if __name__ == "__main__":
    main()
