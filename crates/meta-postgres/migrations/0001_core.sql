-- Registry core: filled in by the registry port of the adapter.
SELECT 1;
