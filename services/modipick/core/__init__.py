"""Pure selection core: profiles, budgets and policies. No I/O, no gRPC, no Redis, no TensorFlow."""

from modipick.core.budget import Budget, Hindsight
from modipick.core.profiles import Candidate, ModelProfile, ewma_update
from modipick.core.policies import Decision, Policy, Reason, make_policy, policy_names

__all__ = [
    "Budget",
    "Candidate",
    "Decision",
    "Hindsight",
    "ModelProfile",
    "Policy",
    "Reason",
    "ewma_update",
    "make_policy",
    "policy_names",
]
