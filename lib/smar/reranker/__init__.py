"""Step 3, the whole-page reranker f(u, q, i): trained on the few page labels plus the term that
keeps each single-modal order inside its modality; baselines; the registry; the budget sweep.

| module | holds |
|---|---|
| `store` | `PageStore`, the columnar pages the models train and score on, and label operations |
| `inputs` | pinned-version reads of the tables and the assembly of a `PageStore` |
| `text_cache` | MiniLM embeddings of query and item texts, encoded once per text ever |
| `model`, `losses`, `dataset`, `training` | the torch model, SMAR losses, batches, the training loop |
| `baselines` | fusions and LightGBM lambdarank |
| `runs` | fitting and evaluating one run (shared by the job and the sweep) |
| `registry` | `gold.reranker_runs` and artifacts |
| `inference` | scoring logged pages with a registered run (for the replay) |
| `sweep` | the budget sweep, its table and plot |
| `jobs` | the job bodies |
"""
