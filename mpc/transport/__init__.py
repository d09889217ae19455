"""gRPC transport: servers, channels, TLS, chunking and proto <-> domain conversion."""
