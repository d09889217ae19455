"""Protocol layer: job specs and the round state machines (pure, no gRPC)."""
