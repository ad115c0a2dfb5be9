"""Trace-replay load generator: real network traces turned into per-request upload and return
legs (or a shaped TCP link), open-loop load against a Selector, per-request records, summaries,
policy comparisons and paper-style plots.

Entry point: `modipick loadgen` (modipick.loadgen.cli). No TensorFlow here.
"""
