"""The offline picture metrics against known answers, as a table: the emoji set against itself, blur and noise
of growing strength, a collapsed generator (what tests/test_picture_metrics.py checks, with the numbers).

Usage: python benchmarks/picture_metrics.py   (needs fonts-noto-color-emoji and unicode-data)
"""

from __future__ import annotations

import numpy as np

from gentoolkit.samples.emoji import load
from gentoolkit.samples.features import blurred, feature_net, features, kid
from gentoolkit.samples.metrics import fidelity_diversity, frechet_distance


def main() -> None:
    x = load(size=32).x
    order = np.random.default_rng(1).permutation(len(x))
    a, b = x[order[:1500]], x[order[1500:3000]]
    fa = features(a)
    rng = np.random.default_rng(0)
    cases = [("the other half of the set", b)]
    cases += [(f"blur, sigma {s} px", blurred(b, s)) for s in (0.5, 1.0, 1.5, 2.0)]
    cases += [(f"noise, sd {s}", np.clip(b + s * rng.standard_normal(b.shape), 0, 1).astype(np.float32))
              for s in (0.05, 0.1, 0.2, 0.3)]
    cases += [("one picture 1,500 times (collapse)", np.repeat(b[:1], len(b), axis=0))]
    _, info = feature_net()
    print(f"features: {info['name']} v{info['version']}, seed {info['seed']}, {info['classes']} subgroups, "
          f"held-out accuracy {info['held_out_accuracy']:.3f}; 1,500 pictures against 1,500")
    print("| generated | FD | KID | precision | recall | density | coverage |")
    print("|---|---|---|---|---|---|---|")
    for name, pics in cases:
        fb = features(pics)
        m = fidelity_diversity(fa, fb)
        print(f"| {name} | {frechet_distance(fa, fb):.2f} | {kid(fa, fb):.3f} | {m['precision']:.3f} | "
              f"{m['recall']:.3f} | {m['density']:.3f} | {m['coverage']:.3f} |")


if __name__ == "__main__":
    main()
