"""The sync engine: how queued keys and full syncs become NB rows and Kubernetes writes.

- batch: reconcile keys into outcomes (Batch), wake objects waiting for an address (Waiters)
- commit: apply outcomes to NB and hand on their writes (Committer); `verdict`, pure
- chunks: rows streamed to NB while reconciling, conditions handed as chunks land (Chunks)
- full: one full sync (FullSync)
- settle, early: manifests mode's plan-only settle pass (SettlePass -> Settled) and the new
  rows it sends as it goes (EarlyRows)
- worker: the worker thread's loops (step, serve, drain, verify) and their lasting state
- report: SyncReport, Verdict, Verdicts; heap: the garbage collector after each commit
"""
