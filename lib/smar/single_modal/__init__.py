"""Step 1, single-modal rankers: one ranker per modality trained from clicks, and the pandas-UDF
scoring of every logged impression with its modality's ranker.

| module | holds |
|---|---|
| `rankers/` | the torch models, their features, training loop, artifacts, device choice, the MiniLM encoder |
| `list_features` | features that depend on the list or the query (production percentile, query-term coverage) |
| `evaluation` | NDCG@10 against production and popularity, with paired-bootstrap intervals |
| `scoring` | the scoring transforms and pandas UDFs |
| `registry` | model versions and the `CURRENT` pointer |
| `jobs` | the job bodies (`train_single_modal`, `score_single_modal`) |
"""
