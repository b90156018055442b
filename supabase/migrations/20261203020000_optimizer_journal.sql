-- huntflow: the optimizer's journal since its last full checkpoint. evolve pickles the whole
-- optimizer (tens of milliseconds and hundreds of kB for NGOpt's archive) only every few
-- commits; the commits in between append what they did to the optimizer instead: the outcomes
-- they told (as the rows had them), the budget extensions, and each ask's mode with the ask id
-- and a fingerprint of what it asked. Resume loads the checkpoint and replays the journal, in
-- the same transaction order, which gives back the exact optimizer (the asks are checked
-- against their fingerprints). Written in evolve's commit, under the same optimizer_seq
-- compare-and-set as the checkpoint; emptied whenever a full checkpoint is written.

alter table hunt.campaigns add column if not exists optimizer_journal jsonb not null default '[]'::jsonb;
comment on column hunt.campaigns.optimizer_journal is 'Evolve commits since optimizer_state was written: per commit a list of [op, ...] (extend, tell with outcomes, ask with mode, ask id and fingerprint), replayed on the checkpoint to resume exactly.';
