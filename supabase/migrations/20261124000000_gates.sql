-- huntflow: gates, the human decisions a campaign waits for.
-- A campaign whose spec sets gates.promotion holds each promotion and certification generation
-- (planned, not dispatched) until someone approves or rejects it; one that sets
-- gates.completion asks before it completes. Decisions are rows, made with `huntflow gate` or
-- a plain UPDATE from Studio/SQL (status + decided_at together).

create type hunt.gate_kind as enum ('promotion', 'completion');
create type hunt.gate_status as enum ('pending', 'approved', 'rejected');

create table hunt.gates (
  gate_id uuid primary key default gen_random_uuid(),
  campaign_id uuid not null references hunt.campaigns (campaign_id) on delete cascade,
  kind hunt.gate_kind not null,
  status hunt.gate_status not null default 'pending',
  generation_id uuid references hunt.generations (generation_id) on delete cascade,
  subject jsonb not null default '{}'::jsonb,
  requested_at timestamptz not null default now(),
  decided_at timestamptz,
  decided_by text,
  note text not null default '',
  constraint gates_promotion_has_generation check ((kind = 'promotion') = (generation_id is not null)),
  constraint gates_decided_when_not_pending check ((status = 'pending') = (decided_at is null))
);
comment on table hunt.gates is 'Human decisions a campaign waits for: approve a promotion (a held generation) or a completion.';
comment on column hunt.gates.subject is 'What is to be decided: the held generation''s candidates, or the completion reason and best candidate.';
create unique index gates_generation_key on hunt.gates (generation_id) where generation_id is not null;
create unique index gates_one_pending_completion on hunt.gates (campaign_id) where kind = 'completion' and status = 'pending';
create index gates_pending_idx on hunt.gates (requested_at) where status = 'pending';
create index gates_campaign_idx on hunt.gates (campaign_id, requested_at);

alter table hunt.gates enable row level security;
create policy gates_service_role_all on hunt.gates for all to service_role using (true) with check (true);
create policy gates_authenticated_select on hunt.gates for select to authenticated using (true);
grant select, insert, update, delete on hunt.gates to service_role;
grant select on hunt.gates to authenticated;

-- the progress view gains the number of pending gates (appended column: replace keeps the rest)
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
  (select count(*) from hunt.gates q where q.campaign_id = c.campaign_id and q.status = 'pending') as gates_pending
from hunt.campaigns c;
comment on view hunt.campaign_progress is 'Per campaign: status, current stage, generations, evaluations by status, best objective so far, pending gates.';
