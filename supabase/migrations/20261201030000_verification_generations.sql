-- huntflow: verification generations.
-- review re-evaluates a parsed generation's best candidates under the perturbations their model
-- declares (another noise key, a halved time step, a repeat run) as a small generation of its
-- own, kind 'verification', on the operator the checked generation ran on. Such a generation is
-- never told to the optimizer and is not search budget: its meta holds
-- {"verification": {"verifies": <generation id>, "perturbation": ..., "fixed": ..., "settings": ...}}
-- and each of its evaluations' decision {"verifies": <evaluation id>, "key_index": <candidate index>}.
-- Its ask_id is negative (below every optimizer ask).

alter type hunt.generation_kind add value if not exists 'verification';

comment on type hunt.generation_kind is
  'search/promotion/certification: optimizer asks; verification: review''s re-evaluation of another generation''s best candidates under a perturbation (never told, not search budget).';

create index if not exists generations_verifies_idx
  on hunt.generations ((meta -> 'verification' ->> 'verifies'))
  where meta ? 'verification';
