"""Coordinator: job orchestration, persistence and (later) budget enforcement."""
