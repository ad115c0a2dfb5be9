"""Simulator: runs the live Selector's policy objects (modipick.core) against drawn network and
execution times, to reproduce the ModiPick paper's simulation figures and probe where it loses.

Entry point: `modipick sim` (modipick.sim.cli). No gRPC, no Redis, no TensorFlow here.
"""
