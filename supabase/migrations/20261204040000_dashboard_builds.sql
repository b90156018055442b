-- huntflow: when each campaign's dashboard artifact was last rebuilt, and what that rebuild
-- cost, kept in a row so that the pacing of rebuilds (flows/artifacts.py: at most every
-- HUNTFLOW_PLOT_SECONDS, or 20x the last rebuilds of all active campaigns together) holds
-- across processes: a scheduled tick is a fresh process each time and used to rebuild every
-- dashboard older than the period, whatever its cost. Written after each rebuild (not in any
-- tick's transaction: an artifact is never a reason to fail or repeat a tick).

create table hunt.dashboard_builds (
  campaign_id uuid primary key references hunt.campaigns (campaign_id) on delete cascade,
  built_at timestamptz not null default now(),
  build_seconds double precision not null check (build_seconds >= 0)
);
comment on table hunt.dashboard_builds is 'Per campaign, its dashboard artifact''s last rebuild (time and cost), which paces the next one in any process.';
comment on column hunt.dashboard_builds.built_at is 'When the last rebuild finished (database clock).';
comment on column hunt.dashboard_builds.build_seconds is 'Wall seconds the last rebuild took (reading the history, rendering, plots, writing the artifact).';

alter table hunt.dashboard_builds enable row level security;
create policy dashboard_builds_service_role_all on hunt.dashboard_builds for all to service_role using (true) with check (true);
create policy dashboard_builds_authenticated_select on hunt.dashboard_builds for select to authenticated using (true);
grant select, insert, update, delete on hunt.dashboard_builds to service_role;
grant select on hunt.dashboard_builds to authenticated;
