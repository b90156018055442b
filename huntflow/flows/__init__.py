"""Prefect flows (tick, generation) and the ``huntflow`` CLI. A flow body only sequences calls."""
