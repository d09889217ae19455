"""Party runtime: configuration, local data and job sessions."""
