"""The chaos suite: hostile scenarios against real worker processes (``make chaos``).

Each scenario (``chaos/scenarios/``) starts worker processes (:mod:`chaos.worker`) on a store
of its own, disturbs them (SIGKILL, SIGSTOP, a restarted PostgreSQL server, a full disk, a
task that kills its process) and then tallies the evidence (:mod:`chaos.tally`): the audit log
the database keeps of every status change (:mod:`chaos.audit`), and the run log the tasks keep
of every run (:mod:`chaos.runlog`). ``python -m chaos`` runs them all and prints the figures;
``tests/test_chaos.py`` runs a short version of each. See docs/reliability.md, "Chaos suite".
"""
