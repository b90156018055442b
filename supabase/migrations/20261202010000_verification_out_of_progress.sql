-- huntflow: review's verification re-runs leave the search's numbers alone.
-- * hunt.campaign_progress counted verification generations and their evaluations with the
--   search's; it now counts only optimizer asks (search/promotion/certification) in
--   generations and evaluations*, and says what review re-ran in two new columns
--   (verification_generations, verification_evaluations).
-- * A verification generation used to take the next generation_index, leaving holes in the
--   search's numbering (gen-3, gen-5, ...). It now carries the index of the generation it
--   verifies, so generation_index is unique among optimizer asks only.

alter table hunt.generations drop constraint if exists generations_campaign_id_generation_index_key;
create unique index if not exists generations_campaign_index_key
  on hunt.generations (campaign_id, generation_index) where kind <> 'verification';
comment on column hunt.generations.generation_index is
  'The ask''s number in its campaign (0, 1, 2, ... without holes); a verification generation carries the number of the generation it verifies.';

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
  (select count(*) from hunt.generations g where g.campaign_id = c.campaign_id and g.kind <> 'verification') as generations,
  (select count(*) from hunt.evaluations e join hunt.generations g using (generation_id)
    where e.campaign_id = c.campaign_id and g.kind <> 'verification') as evaluations,
  (select count(*) from hunt.evaluations e join hunt.generations g using (generation_id)
    where e.campaign_id = c.campaign_id and g.kind <> 'verification' and e.status = 'pending') as evaluations_pending,
  (select count(*) from hunt.evaluations e join hunt.generations g using (generation_id)
    where e.campaign_id = c.campaign_id and g.kind <> 'verification' and e.status = 'succeeded') as evaluations_succeeded,
  (select count(*) from hunt.evaluations e join hunt.generations g using (generation_id)
    where e.campaign_id = c.campaign_id and g.kind <> 'verification' and e.status = 'failed') as evaluations_failed,
  (select count(*) from hunt.evaluations e join hunt.generations g using (generation_id)
    where e.campaign_id = c.campaign_id and g.kind <> 'verification' and e.status = 'rejected') as evaluations_rejected,
  (select count(*) from hunt.evaluations e join hunt.generations g using (generation_id)
    where e.campaign_id = c.campaign_id and g.kind <> 'verification' and e.status = 'filtered') as evaluations_filtered,
  c.best_objective,
  c.completion_reason,
  c.created_at,
  c.updated_at,
  c.completed_at,
  (select count(*) from hunt.gates q where q.campaign_id = c.campaign_id and q.status = 'pending') as gates_pending,
  c.best_evaluation_id,
  b.fidelity as best_fidelity,
  c.spec -> 'fidelities' -> b.fidelity ->> 'name' as best_fidelity_name,
  (b.fidelity = jsonb_array_length(c.spec -> 'fidelities') - 1) as best_certified,
  (select count(*) from hunt.generations g where g.campaign_id = c.campaign_id and g.kind = 'verification') as verification_generations,
  (select count(*) from hunt.evaluations e join hunt.generations g using (generation_id)
    where e.campaign_id = c.campaign_id and g.kind = 'verification') as verification_evaluations
from hunt.campaigns c
left join hunt.evaluations b on b.evaluation_id = c.best_evaluation_id;
comment on view hunt.campaign_progress is 'Per campaign: status, current stage, generations and evaluations of the search (review''s verification re-runs counted apart), pending gates, and the best so far (best_of: top fidelity first) with its rung and whether it is certified.';
