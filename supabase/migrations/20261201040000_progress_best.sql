-- huntflow: one definition of "the best" in the progress view.
-- learn stores the campaign's best (engine/summary.py best_of: the best feasible succeeded
-- evaluation at the top fidelity, else at any rung) as best_objective + best_evaluation_id.
-- The view now also says at which rung that best was evaluated and whether it is certified
-- (evaluated at the top rung), so `huntflow status`, the progress bar, the summary, the
-- report and the Prefect artifacts all name the same candidate the same way.

create or replace view hunt.campaign_progress
with (security_invoker = true) as
select
  c.campaign_id,
  c.slug,
  c.status,
  c.mode,
  c.current_stage as stage,
  c.priority,
  c.evaluations_budget,
  (select count(*) from hunt.generations g where g.campaign_id = c.campaign_id) as generations,
  (select count(*) from hunt.evaluations e where e.campaign_id = c.campaign_id) as evaluations,
  (select count(*) from hunt.evaluations e where e.campaign_id = c.campaign_id and e.status = 'pending') as evaluations_pending,
  (select count(*) from hunt.evaluations e where e.campaign_id = c.campaign_id and e.status = 'succeeded') as evaluations_succeeded,
  (select count(*) from hunt.evaluations e where e.campaign_id = c.campaign_id and e.status = 'failed') as evaluations_failed,
  (select count(*) from hunt.evaluations e where e.campaign_id = c.campaign_id and e.status = 'rejected') as evaluations_rejected,
  (select count(*) from hunt.evaluations e where e.campaign_id = c.campaign_id and e.status = 'filtered') as evaluations_filtered,
  c.best_objective,
  c.completion_reason,
  c.created_at,
  c.updated_at,
  c.completed_at,
  (select count(*) from hunt.gates q where q.campaign_id = c.campaign_id and q.status = 'pending') as gates_pending,
  c.best_evaluation_id,
  b.fidelity as best_fidelity,
  c.spec -> 'fidelities' -> b.fidelity ->> 'name' as best_fidelity_name,
  (b.fidelity = jsonb_array_length(c.spec -> 'fidelities') - 1) as best_certified
from hunt.campaigns c
left join hunt.evaluations b on b.evaluation_id = c.best_evaluation_id;
comment on view hunt.campaign_progress is 'Per campaign: status, current stage, generations, evaluations by status, pending gates, and the best so far (best_of: top fidelity first) with its rung and whether it is certified.';
