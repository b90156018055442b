"""One module per tick stage: discover, dispatch, parse, review, evolve, learn.

Each module holds the stage's logic as a plain function of a connection and a campaign row
(``run(conn, campaign, ctx) -> summary``) and a thin Prefect ``@task`` that wraps it with
retries, a timeout and its ``hunt.stage_runs`` row (see :mod:`huntflow.tasks._stage`).
"""
