-- huntflow: crash recovery — short heartbeated leases, a lease guard on every write a tick
-- makes, orphaned stage runs closed as 'crashed', orchestrator interruptions that do not spend a
-- generation's attempts, and poison campaigns that end as 'failed'.
--
-- * A tick holds a session-level advisory lock (key: 1213550164 = 'HUNT', its backend pid) on its
--   heartbeat connection and records that backend's pid in campaigns.lease_pid. The database
--   drops the lock the moment the connection dies (a killed tick), so the lease is claimable at
--   once (hunt.lease_session_alive); a tick that is alive but silent (paused, partitioned) loses
--   its lease when lease_expires_at passes (the heartbeat renews it every lease_seconds / 3).
-- * A tick's stage connection sets huntflow.lease_owner; hunt.guard_lease() then refuses
--   (SQLSTATE HF409) any write to a campaign's rows unless that owner still holds the campaign's
--   lease, checked in the writing transaction (the campaign row is locked `for key share`, so a
--   concurrent claim, which locks `for update skip locked`, cannot slip in before it commits).
--   Connections that do not set it (CLI, workers, Studio) are not affected.

alter type hunt.stage_run_status add value if not exists 'crashed';

alter table hunt.campaigns
  add column if not exists lease_pid integer,
  add column if not exists failure_streak integer not null default 0,
  add column if not exists last_error text;
comment on column hunt.campaigns.lease_pid is 'Backend pid of the lease owner''s heartbeat session (its advisory lock proves the owner alive).';
comment on column hunt.campaigns.failure_streak is 'Ticks in a row in which a stage of this campaign failed after its retries; reset by a clean tick.';
comment on column hunt.campaigns.last_error is 'The last stage or generation error that counted towards failure_streak.';

alter table hunt.generations
  add column if not exists interruptions integer not null default 0;
comment on column hunt.generations.interruptions is 'Runs lost because the orchestrator (not the work) died; they did not spend an attempt.';

-- the heartbeat renews the lease every lease_seconds / 3: a short lease is now safe and makes a
-- silent tick's campaigns claimable within seconds (the old default, 900, is lowered; a value an
-- operator chose is kept)
update hunt.settings set value = '30'::jsonb, updated_at = now() where key = 'lease_seconds' and value = '900'::jsonb;
insert into hunt.settings (key, value) values ('failure_streak_limit', '3'::jsonb) on conflict (key) do nothing;

create or replace function hunt.lease_session_alive(pid integer) returns boolean
language sql stable
set search_path = ''
as $$
  select pid is not null and exists (
    select 1 from pg_catalog.pg_locks l
    where l.locktype = 'advisory' and l.granted and l.pid = lease_session_alive.pid
      and l.classid = 1213550164::oid and l.objid = lease_session_alive.pid::oid and l.objsubid = 2
  );
$$;
comment on function hunt.lease_session_alive(integer) is 'True while the tick whose heartbeat session has this backend pid is connected.';

create or replace function hunt.guard_lease() returns trigger
language plpgsql
set search_path = ''
as $$
declare
  owner text := nullif(current_setting('huntflow.lease_owner', true), '');
  cid uuid;
  holder text;
begin
  if owner is null then
    return coalesce(new, old);
  end if;
  if tg_table_name = 'campaigns' then
    holder := old.lease_owner;
    cid := old.campaign_id;
  else
    cid := case when tg_op = 'DELETE' then old.campaign_id else new.campaign_id end;
    select c.lease_owner into holder from hunt.campaigns c where c.campaign_id = cid for key share;
  end if;
  if holder is distinct from owner then
    raise exception using errcode = 'HF409',
      message = format('lease lost: campaign %s is leased by %s, not by %s', cid, coalesce(holder, 'nobody'), owner);
  end if;
  return coalesce(new, old);
end
$$;
comment on function hunt.guard_lease() is 'Refuses a tick''s write to a campaign it no longer leases (huntflow.lease_owner set on its connection).';

create trigger campaigns_guard_lease before update on hunt.campaigns
  for each row execute function hunt.guard_lease();
create trigger generations_guard_lease before insert or update or delete on hunt.generations
  for each row execute function hunt.guard_lease();
create trigger evaluations_guard_lease before insert or update or delete on hunt.evaluations
  for each row execute function hunt.guard_lease();
create trigger findings_guard_lease before insert or update or delete on hunt.findings
  for each row execute function hunt.guard_lease();
create trigger trajectories_guard_lease before insert or update or delete on hunt.trajectories
  for each row execute function hunt.guard_lease();
create trigger gates_guard_lease before insert or update or delete on hunt.gates
  for each row execute function hunt.guard_lease();
