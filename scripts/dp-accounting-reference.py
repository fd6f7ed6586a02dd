#!/usr/bin/env python3
"""Reference values for GaussianAccountant, computed once with Google's dp-accounting (pip install dp-accounting==0.6.0).

Writes Tests/DistillTests/Fixtures/dp-accounting/reference.json: the RDP of one Poisson-subsampled Gaussian step at a few
integer orders, and the (epsilon, delta) of T steps over the integer orders 2..256 (the orders FedDistill uses).
"""
import json
import pathlib

import dp_accounting
from dp_accounting.rdp import rdp_privacy_accountant as rdp

ORDERS = list(range(2, 257))
CASES = [  # (sample rate q, noise multiplier sigma, steps T, delta)
    (1.0, 8.0, 200, 1e-5),
    (0.5, 3.0, 100, 1e-5),
    (256 / 6000, 1.0, 1000, 1e-5),
    (0.01, 1.1, 10000, 1e-5),
    (0.2, 0.8, 50, 1e-3),
]

cases = []
for q, sigma, steps, delta in CASES:
    event = dp_accounting.SelfComposedDpEvent(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps)
    accountant = rdp.RdpAccountant(orders=ORDERS)
    accountant.compose(event)
    per_step = rdp._compute_rdp_poisson_subsampled_gaussian(q, sigma, [2, 8, 32, 128])
    cases.append({"sample_rate": q, "noise_multiplier": sigma, "steps": steps, "delta": delta,
                  "rdp_orders": [2, 8, 32, 128], "rdp": [float(v) for v in per_step],
                  "epsilon": accountant.get_epsilon(delta)})

out = pathlib.Path(__file__).resolve().parent.parent / "Tests/DistillTests/Fixtures/dp-accounting/reference.json"
out.write_text(json.dumps({"source": "dp-accounting 0.6.0, RdpAccountant(orders=range(2, 257))", "cases": cases}, indent=1) + "\n")
print(out)
