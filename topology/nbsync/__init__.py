"""The NB sync engine: the NB client, transactions built from a plan, the applier,
the chunked stream of a full sync, the SB health monitor."""
