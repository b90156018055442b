"""``python -m huntflow.flows.cli`` (what slurm jobs run): the ``huntflow`` command."""

from huntflow.flows.cli import app

app(prog_name="huntflow")
