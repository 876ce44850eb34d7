"""Step 3, the whole-page reranker f(u, q, i): trained on the few page labels plus the term that
keeps each single-modal order inside its modality; baselines; the registry; the budget sweep.

| module | holds |
|---|---|
| `store` | `PageStore`, the columnar pages the models train and score on, and label operations |
| `inputs` | pinned-version reads of the tables and the assembly of a `PageStore` |
| `text_cache` | MiniLM embeddings of query and item texts, encoded once per text ever |
| `model`, `losses`, `dataset`, `training` | the torch model, SMAR losses, batches, the training loop |
| `calibrated_merge` | the calibrated merge (monotone in every single-modal score) and the residual merge |
| `merge_selection` | `smar_merge`, the default: the merge teaches the residual merge below half the labels |
| `ceiling` | the merge ceiling: the best page that keeps every single-modal order (dynamic programme) |
| `baselines`, `gbdt_smar` | fusions and LightGBM lambdarank; LightGBM with a SMAR objective |
| `runs` | fitting and evaluating one run (shared by the job and the sweep) |
| `registry` | `gold.reranker_runs` and artifacts |
| `inference` | scoring logged pages with a registered run (for the replay) |
| `sweep`, `sweep_report`, `sweep_stats` | the budget sweep; its table, comparisons and plot; bootstrap over queries and seeds |
| `jobs` | the job bodies |
"""
