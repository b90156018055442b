-- huntflow: the hunt schema.
-- Campaigns, generations, evaluations, stage runs, review findings, trajectories and settings,
-- with enum statuses, foreign keys, the indexes the tick's queries use, row-level security on
-- every table (service_role writes, authenticated reads) and the campaign_progress view.
-- Roles are created when absent so the same file applies to plain Postgres and to Supabase.

do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
end
$$;

create schema if not exists hunt;
grant usage on schema hunt to service_role, authenticated;

-- status and stage enums -----------------------------------------------------------------
create type hunt.campaign_status as enum ('active', 'paused', 'completed', 'failed', 'cancelled');
create type hunt.campaign_mode as enum ('explore', 'exploit', 'recover');
create type hunt.stage as enum ('discover', 'dispatch', 'parse', 'review', 'evolve', 'learn');
create type hunt.generation_status as enum (
  'planned',     -- asked by evolve and committed with the optimizer checkpoint; not yet launched
  'dispatched',  -- handed to an operator (dispatch_ref says where)
  'running',     -- the generation flow has started evaluating
  'succeeded',   -- the generation flow wrote its artifact and result document
  'parsed',      -- parse validated the result document into evaluation rows
  'reviewed',    -- review checked the evaluations; ready for evolve to tell
  'told',        -- evolve told the optimizer (terminal)
  'failed',      -- gave up after max attempts (terminal)
  'cancelled'    -- the campaign ended before it ran (terminal)
);
create type hunt.generation_kind as enum ('search', 'promotion', 'certification');
create type hunt.evaluation_status as enum ('pending', 'succeeded', 'failed', 'rejected', 'filtered');
create type hunt.stage_run_status as enum ('running', 'succeeded', 'failed', 'skipped');
create type hunt.finding_severity as enum ('critical', 'high', 'medium', 'low');

-- settings -------------------------------------------------------------------------------
create table hunt.settings (
  key text primary key,
  value jsonb not null,
  updated_at timestamptz not null default now()
);
comment on table hunt.settings is 'Operator settings read by every tick (e.g. max_concurrent_campaigns).';
insert into hunt.settings (key, value) values
  ('max_concurrent_campaigns', '4'::jsonb),
  ('lease_seconds', '900'::jsonb);

-- campaigns ------------------------------------------------------------------------------
create table hunt.campaigns (
  campaign_id uuid primary key default gen_random_uuid(),
  slug text not null unique check (slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
  title text not null default '',
  spec jsonb not null,
  spec_fingerprint text not null,
  model text not null,
  seed bigint not null,
  priority integer not null default 0,
  status hunt.campaign_status not null default 'active',
  mode hunt.campaign_mode not null default 'explore',
  current_stage hunt.stage,
  evaluations_budget integer not null check (evaluations_budget > 0),
  optimizer_state bytea,
  optimizer_seq integer not null default 0,
  search_summary jsonb not null default '{}'::jsonb,
  search_finished boolean not null default false,
  best_objective double precision,
  best_evaluation_id uuid,
  completion_reason text,
  lease_owner text,
  lease_expires_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  completed_at timestamptz
);
comment on table hunt.campaigns is 'One hunt: its validated spec, status, mode, latest optimizer checkpoint and tick lease.';
create index campaigns_status_priority_idx on hunt.campaigns (status, priority desc);

-- generations ----------------------------------------------------------------------------
create table hunt.generations (
  generation_id uuid primary key default gen_random_uuid(),
  campaign_id uuid not null references hunt.campaigns (campaign_id) on delete cascade,
  generation_index integer not null check (generation_index >= 0),
  ask_id integer not null,
  kind hunt.generation_kind not null default 'search',
  fidelity integer not null check (fidelity >= 0),
  fidelity_name text not null,
  status hunt.generation_status not null default 'planned',
  seed bigint not null,
  operator text not null default 'inline',
  dispatch_ref text,
  attempt integer not null default 0,
  max_attempts integer not null default 3,
  optimizer_checkpoint bytea,
  meta jsonb not null default '{}'::jsonb,
  result_document jsonb,
  artifact_path text,
  error text,
  created_at timestamptz not null default now(),
  dispatched_at timestamptz,
  started_at timestamptz,
  finished_at timestamptz,
  heartbeat_at timestamptz,
  updated_at timestamptz not null default now(),
  unique (campaign_id, generation_index),
  unique (campaign_id, ask_id)
);
comment on table hunt.generations is 'One batch of candidates asked at one fidelity and dispatched as a unit; carries the optimizer checkpoint written with it.';
create index generations_campaign_status_idx on hunt.generations (campaign_id, status);
create index generations_status_idx on hunt.generations (status);

-- evaluations ----------------------------------------------------------------------------
create table hunt.evaluations (
  evaluation_id uuid primary key default gen_random_uuid(),
  generation_id uuid not null references hunt.generations (generation_id) on delete cascade,
  campaign_id uuid not null references hunt.campaigns (campaign_id) on delete cascade,
  candidate_index integer not null check (candidate_index >= 0),
  params jsonb not null,
  param_hash text not null,
  fidelity integer not null,
  status hunt.evaluation_status not null default 'pending',
  failure_category text,
  metrics jsonb,
  objectives double precision[],
  objective double precision,
  constraints double precision[],
  feasible boolean,
  alm_loss double precision,
  alm_lambda double precision[],
  alm_rho double precision,
  alm_outer integer,
  decision jsonb not null default '{}'::jsonb,
  provenance jsonb,
  wall_seconds double precision,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (generation_id, candidate_index)
);
comment on table hunt.evaluations is 'One candidate of a generation: params, raw metrics, objectives, constraints, feasibility, ALM state and provenance.';
create index evaluations_campaign_status_idx on hunt.evaluations (campaign_id, status);
create index evaluations_campaign_objective_idx on hunt.evaluations (campaign_id, objective) where feasible;

-- stage runs -----------------------------------------------------------------------------
create table hunt.stage_runs (
  stage_run_id bigint generated always as identity primary key,
  tick_id uuid not null,
  campaign_id uuid references hunt.campaigns (campaign_id) on delete cascade,
  stage hunt.stage not null,
  status hunt.stage_run_status not null default 'running',
  attempt integer not null default 1,
  summary jsonb not null default '{}'::jsonb,
  error text,
  started_at timestamptz not null default now(),
  finished_at timestamptz,
  unique (tick_id, campaign_id, stage)
);
comment on table hunt.stage_runs is 'One execution of one stage for one campaign in one tick.';
create index stage_runs_campaign_idx on hunt.stage_runs (campaign_id, started_at desc);
create index stage_runs_tick_idx on hunt.stage_runs (tick_id);

-- findings -------------------------------------------------------------------------------
create table hunt.findings (
  finding_id bigint generated always as identity primary key,
  campaign_id uuid not null references hunt.campaigns (campaign_id) on delete cascade,
  generation_id uuid references hunt.generations (generation_id) on delete cascade,
  evaluation_id uuid references hunt.evaluations (evaluation_id) on delete cascade,
  severity hunt.finding_severity not null,
  kind text not null,
  message text not null,
  details jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now()
);
comment on table hunt.findings is 'What review found about an evaluation; critical or high rejects it.';
create index findings_campaign_idx on hunt.findings (campaign_id, severity);
create index findings_evaluation_idx on hunt.findings (evaluation_id);

-- trajectories ---------------------------------------------------------------------------
create table hunt.trajectories (
  trajectory_id bigint generated always as identity primary key,
  campaign_id uuid not null references hunt.campaigns (campaign_id) on delete cascade,
  generation_id uuid not null unique references hunt.generations (generation_id) on delete cascade,
  generation_index integer not null,
  evaluations_used integer not null,
  best_objective double precision,
  improvement double precision,
  feasible_fraction double precision,
  hypervolume double precision,
  mode hunt.campaign_mode not null,
  reward double precision not null default 0,
  details jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now()
);
comment on table hunt.trajectories is 'What learn recorded after each generation: best so far, improvement, mode, reward.';
create index trajectories_campaign_idx on hunt.trajectories (campaign_id, generation_index);

-- row-level security: service_role writes, authenticated reads -----------------------------
do $$
declare
  t text;
begin
  foreach t in array array['settings', 'campaigns', 'generations', 'evaluations',
                           'stage_runs', 'findings', 'trajectories']
  loop
    execute format('alter table hunt.%I enable row level security', t);
    execute format('create policy %I on hunt.%I for all to service_role using (true) with check (true)',
                   t || '_service_role_all', t);
    execute format('create policy %I on hunt.%I for select to authenticated using (true)',
                   t || '_authenticated_select', t);
    execute format('grant select, insert, update, delete on hunt.%I to service_role', t);
    execute format('grant select on hunt.%I to authenticated', t);
  end loop;
end
$$;

-- progress view ----------------------------------------------------------------------------
create view hunt.campaign_progress
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
  c.completed_at
from hunt.campaigns c;
comment on view hunt.campaign_progress is 'Per campaign: status, current stage, generations, evaluations by status, best objective so far.';
grant select on hunt.campaign_progress to service_role, authenticated;
