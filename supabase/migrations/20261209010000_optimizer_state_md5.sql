-- huntflow: the md5 of the campaign's optimizer checkpoint, kept beside it. evolve reuses the
-- optimizer it keeps live in memory only while the stored state is still the one it committed
-- (optimizer_seq, the checkpoint's md5 and the journal's length); the md5 was computed on every
-- evolve by reading the whole checkpoint (~0.7 MB after 60 batches of the demo, growing with
-- NGOpt's archive: 0.6-1.6 ms a tick). A trigger computes it whenever the checkpoint is written,
-- by anyone (one write in up to 32 commits), so a change made outside huntflow is still noticed.

alter table hunt.campaigns add column optimizer_state_md5 text;
comment on column hunt.campaigns.optimizer_state_md5 is 'md5 of optimizer_state, set by trigger whenever optimizer_state is written (null with it).';

create function hunt.set_optimizer_state_md5() returns trigger
language plpgsql as $$
begin
  new.optimizer_state_md5 := md5(new.optimizer_state);
  return new;
end
$$;

create trigger campaigns_state_md5 before insert or update of optimizer_state, optimizer_state_md5 on hunt.campaigns
  for each row execute function hunt.set_optimizer_state_md5();

update hunt.campaigns set optimizer_state_md5 = md5(optimizer_state) where optimizer_state is not null;
