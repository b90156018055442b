"""Postgres access: the single source of truth.

``connection`` finds the database (``SUPABASE_DB_URL`` or an embedded pgserver) and applies
migrations; one module per table family holds the reads and the state transitions. Every
transition is one transaction guarded by the expected status (``UPDATE ... WHERE status = ...``);
a lost race returns ``False`` or raises :class:`huntflow.errors.StaleTransition`.
"""
