"""Step 0, ingest: raw search logs of one day -> validated `bronze.*` tables and `bronze.rejects`.

| module | holds |
|---|---|
| `generator` | the synthetic world (the embedded default's data) |
| `sources`, `qilin` | readers at the edge: raw files -> landing Arrow tables, nothing dropped |
| `validation` | row rules from the contracts, in Spark: accepted rows and rejects with reasons |
| `quality` | Great Expectations suites derived from the same contracts |
| `jobs` | the job bodies (`ingest`, `write_generated_files`) |
"""
