"""Local multi-party deployments for the demo, the integration tests and the benchmarks."""
