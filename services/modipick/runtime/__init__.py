"""Plumbing every service shares: logging, config from flags/env, gRPC server lifecycle."""
