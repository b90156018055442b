"""``huntflow campaign list|show|pause|resume|cancel|delete``, the CLI's error handler, tables
that keep what a user copies, and read-only commands that import neither JAX nor Prefect."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

from typer.testing import CliRunner

from huntflow.flows.cli import app
from huntflow.store import campaigns, generations
from huntflow.store.states import GenerationStatus as GS

runner = CliRunner()


def _cli(*args: str, **kw):
    return runner.invoke(app, list(args), **kw)


def _planned(db, make_spec, slug: str, operator: str = "inline", evaluations: int = 16):
    """A campaign with one planned generation (evolve's first ask, stored for real)."""
    from huntflow.tasks._stage import TickContext
    from huntflow.tasks.evolve import run as evolve_run

    cid = campaigns.insert_campaign(db, make_spec(slug=slug, budget={"evaluations": evaluations}))
    evolve_run(db, campaigns.get_campaign(db, cid), TickContext(tick_id=uuid.uuid4(), owner="t", operator=operator))
    [g] = db.execute("select * from hunt.generations where campaign_id = %s", (cid,)).fetchall()
    return cid, g


def test_pause_says_in_flight_generations_finish_and_resume_and_cancel_say_what_happened(db, make_spec):
    cid, g = _planned(db, make_spec, "ctl-sphere")
    assert generations.transition(db, g["generation_id"], [GS.PLANNED], GS.DISPATCHED, dispatch_ref="inline:x",
                                  attempt=1)
    paused = _cli("campaign", "pause", "ctl-sphere", "--json")
    assert paused.exit_code == 0, paused.output
    out = json.loads(paused.stdout)
    assert out["status"] == "paused" and campaigns.get_campaign(db, cid)["status"] == "paused"
    [flying] = out["in_flight"]
    assert flying["generation"] == "ctl-sphere/gen-0 (default)" and "told after resume" in flying["what"]
    assert generations.get(db, g["generation_id"])["status"] == "dispatched"  # left to finish
    # a paused campaign cannot be paused again: one line, exit 1 (a state problem, not bad input)
    again = _cli("campaign", "pause", "ctl-sphere")
    assert again.exit_code == 1 and "only a active campaign" in again.output and "Traceback" not in again.output

    resumed = _cli("campaign", "resume", "ctl-sphere")
    assert resumed.exit_code == 0 and "resumed ctl-sphere" in resumed.output
    assert campaigns.get_campaign(db, cid)["status"] == "active"

    # deleting is refused while a generation is launched
    refused = _cli("campaign", "delete", "ctl-sphere", "--yes")
    assert refused.exit_code == 1 and "cancel it first" in refused.output

    cancelled = _cli("campaign", "cancel", "ctl-sphere", "--json")
    assert cancelled.exit_code == 0, cancelled.output
    out = json.loads(cancelled.stdout)
    [gone] = out["generations"]
    assert gone["was"] == "dispatched" and gone["what"].startswith("cancelled")
    assert generations.get(db, g["generation_id"])["status"] == "cancelled"
    row = campaigns.get_campaign(db, cid)
    assert (row["status"], row["completion_reason"]) == ("cancelled", "cancelled")
    # the run that was in flight loses its guarded write: its result is not stored
    assert not generations.transition(db, g["generation_id"], [GS.DISPATCHED, GS.RUNNING], GS.RUNNING)


def test_list_show_and_delete_asks_first(db, make_spec):
    _planned(db, make_spec, "tidy-sphere")
    listed = json.loads(_cli("campaign", "list", "--json").stdout)
    assert [r["slug"] for r in listed] == ["tidy-sphere"] and listed[0]["best_objective"] is None
    shown = _cli("campaign", "show", "tidy-sphere", "--json")
    assert shown.exit_code == 0, shown.output
    s = json.loads(shown.stdout)
    assert s["unfinished_generations"][0]["status"] == "planned" and s["fidelities"] == ["default"]
    assert _cli("campaign", "show", "tidy-nope").exit_code == 2

    no = _cli("campaign", "delete", "tidy-sphere", input="n\n")
    assert no.exit_code == 1 and campaigns.progress(db, "tidy-sphere")
    yes = _cli("campaign", "delete", "tidy-sphere", input="y\n")
    assert yes.exit_code == 0, yes.output
    assert not campaigns.progress(db, "tidy-sphere")
    assert db.execute("select count(*) as n from hunt.evaluations").fetchone()["n"] == 0


def test_narrow_or_piped_tables_keep_slugs_whole(db, make_spec):
    slug = "a-long-campaign-slug-that-someone-will-copy-" + "x" * 12
    campaigns.insert_campaign(db, make_spec(slug=slug))
    for args in (("status",), ("campaign", "list")):
        result = _cli(*args, env={"COLUMNS": "30"})
        assert result.exit_code == 0, result.output
        assert slug in result.stdout, result.stdout


def test_unexpected_errors_are_one_line_unless_debugging(db, make_spec, tmp_path):
    campaigns.insert_campaign(db, make_spec(slug="err-sphere"))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = _cli("summary", "err-sphere", "--out", str(blocker / "sub"))
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "unexpected" in result.output and "--debug" in result.output
    debug = _cli("--debug", "summary", "err-sphere", "--out", str(blocker / "sub"))
    assert debug.exit_code == 1 and isinstance(debug.exception, OSError)


def _loaded_after(args_list: list[list[str]]) -> list[str]:
    """Run CLI commands in a fresh process; which of JAX, Prefect, nevergrad it then holds."""
    script = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from huntflow.flows.cli import app\n"
        "r = CliRunner()\n"
        f"for args in {args_list!r}:\n"
        "    res = r.invoke(app, args)\n"
        "    assert res.exit_code == 0, (args, res.output)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'jax', 'jaxlib', 'prefect', 'nevergrad'}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "HUNTFLOW_DEBUG": "1"})
    assert out.returncode == 0, out.stderr
    return eval(out.stdout.strip().splitlines()[-1])


def test_read_only_commands_import_neither_jax_nor_prefect(db, make_spec, tmp_path):
    campaigns.insert_campaign(db, make_spec(slug="fast-sphere"))
    assert _loaded_after([["--help"], ["status"], ["status", "--json"], ["campaign", "list"],
                          ["campaign", "show", "fast-sphere"], ["gate", "list"], ["kit", "list"]]) == []
    # summary and report of a campaign with evaluations (plots drawn): built-in models are
    # imported on first lookup, so parsing the stored spec loads no JAX
    _, g = _planned(db, make_spec, "read-sphere", operator="slurm", evaluations=8)
    ran = _cli("generation", "run", str(g["generation_id"]), "--json")
    assert ran.exit_code == 0 and json.loads(ran.stdout)["status"] == "succeeded", ran.output
    assert _loaded_after([["summary", "read-sphere", "--out", str(tmp_path / "s")],
                          ["report", "read-sphere", "--out", str(tmp_path / "r")],
                          ["summary", "fast-sphere", "--out", str(tmp_path / "e")]]) == []
    assert list((tmp_path / "s").glob("*.png")), "summary drew no plot of a campaign with evaluations"
