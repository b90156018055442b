"""``python -m huntflow.flows.prefect_schema``: regenerate the dump for the installed Prefect."""

from huntflow.flows.prefect_schema import regenerate

print(f"wrote {regenerate()}")
